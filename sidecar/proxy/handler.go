package proxy

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/router"
)

// State is everything one HTTP listener serves with. Immutable.
type State struct {
	Listener string
	HCM      *config.HTTPConnectionManager
	// Routes is nil when the listener's route configuration is unknown:
	// every request then gets 404 NR.
	Routes   *router.Table
	Clusters cluster.Snapshot
	// BufferLimit is the listener's per_connection_buffer_limit_bytes: the
	// largest request body kept for a retry (0 = Envoy's 1 MiB).
	BufferLimit uint32
}

// Handler forwards HTTP requests. See the package doc for its contract.
type Handler struct {
	state   atomic.Pointer[State]
	log     *zap.Logger
	access  *accesslog.Logger
	metrics *Metrics

	ctx      context.Context // canceled by Close: ends upgraded connections
	cancel   context.CancelFunc
	upgrades sync.WaitGroup
}

// NewHandler returns a handler serving st. access and metrics may be nil.
func NewHandler(log *zap.Logger, access *accesslog.Logger, metrics *Metrics, st *State) *Handler {
	h := &Handler{log: log, access: access, metrics: metrics}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	h.state.Store(st)
	return h
}

// Swap publishes a new state; requests in flight keep the old one.
func (h *Handler) Swap(st *State) { h.state.Store(st) }

// State returns the state new requests use.
func (h *Handler) State() *State { return h.state.Load() }

// Close lets upgraded (hijacked) connections run until ctx ends, then
// cuts them and waits for their goroutines. Regular requests are drained
// by the listener's server.
func (h *Handler) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		h.upgrades.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	h.cancel()
	<-done
}

// exchange is one request's working state. It lives on the stack of
// ServeHTTP.
type exchange struct {
	h     *Handler
	st    *State
	w     http.ResponseWriter
	r     *http.Request
	entry accesslog.Entry
	body  *countingBody
	// g is the request's guard (timeouts, cancellation, the attempts'
	// context) once it is forwarded; nil before.
	g *guard
	// tryIdle is the current attempt's per_try_idle_timeout watch.
	tryIdle *idleWatch
	// replay is the buffered request body when retries may resend it;
	// stream is the body when it can be sent once only (no retry policy,
	// or larger than the buffer limit). Both nil without a body.
	replay *replayBuffer
	stream io.ReadCloser
	// extraFlag is a response flag added to the one of the outcome
	// (URX, or UO on a retry overflow).
	extraFlag string
	retryEnd  retryEnd
	// countInResponse: the virtual host's include_attempt_count_in_response.
	countInResponse bool
	// setCookie is a generated hash-policy cookie for the response.
	setCookie string
	// scratch holds generated header values of the HTTP/1.1 request while
	// scratchValues is set (see value).
	scratch       [3]string
	scratchValues bool
}

// exchanges are pooled: nothing refers to one once ServeHTTP returned.
var exchanges = sync.Pool{New: func() any { return new(exchange) }}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := exchanges.Get().(*exchange)
	*ex = exchange{h: h, st: h.state.Load(), w: w, r: r}
	ex.entry.Start = time.Now()
	defer func() {
		*ex = exchange{} // keep no request alive from the pool
		exchanges.Put(ex)
	}()
	defer ex.finish()
	ex.serve()
}

func (ex *exchange) serve() {
	var vh *config.VirtualHost
	var rt *config.Route
	if ex.st.Routes != nil {
		vh, rt = ex.st.Routes.Route(ex.r)
	}
	switch {
	case rt == nil:
		ex.localReply(http.StatusNotFound, accesslog.NoRouteFound, "")
	case rt.DirectResponse != nil:
		ex.mutateResponse(ex.w.Header(), vh, rt, nil)
		dr := rt.DirectResponse
		if len(dr.Body) > 0 && ex.w.Header().Get("Content-Type") == "" {
			ex.w.Header().Set("Content-Type", "text/plain")
		}
		ex.w.Header().Set("Content-Length", strconv.Itoa(len(dr.Body)))
		ex.w.WriteHeader(dr.Status)
		n, _ := ex.w.Write(dr.Body)
		ex.entry.Status, ex.entry.BytesSent = dr.Status, int64(n)
	case rt.Redirect != nil:
		ex.mutateResponse(ex.w.Header(), vh, rt, nil)
		code := router.RedirectCode(rt.Redirect)
		ex.w.Header().Set("Location", router.RedirectLocation(rt, ex.r))
		ex.w.WriteHeader(code)
		ex.entry.Status = code
	case rt.Forward != nil:
		ex.forward(vh, rt)
	default:
		ex.localReply(http.StatusNotFound, accesslog.NoRouteFound, "")
	}
}

func (ex *exchange) forward(vh *config.VirtualHost, rt *config.Route) {
	a := rt.Forward
	name := a.Cluster
	var wc *config.WeightedCluster
	if len(a.WeightedClusters) > 0 {
		if total := router.TotalWeight(a); total > 0 {
			wc = &a.WeightedClusters[router.PickWeighted(a, rand.Uint32N(total))]
			name = wc.Name
		}
	}
	ex.entry.UpstreamCluster = name
	c := ex.st.Clusters[name]
	if c == nil {
		ex.localReply(http.StatusServiceUnavailable, accesslog.NoClusterFound, "")
		return
	}
	if !c.TryRequest() {
		ex.overloaded()
		return
	}
	defer c.DoneRequest()
	ex.countInResponse = vh != nil && vh.IncludeAttemptCountInResponse
	hash, hasHash, setCookie := requestHash(a.HashPolicies, ex.r)
	ex.setCookie = setCookie

	// One guard holds the stream idle timeout, request_timeout and the
	// route timeout; it is the attempts' context.
	idle := a.IdleTimeout
	var reqTimeout time.Duration
	if hcm := ex.st.HCM; hcm != nil {
		if idle == 0 {
			idle = hcm.StreamIdleTimeout
		}
		reqTimeout = hcm.RequestTimeout
	}
	ex.g = newGuard(ex.r.Context(), ex.entry.Start, idle, reqTimeout)
	defer ex.g.release() // registered first: runs last
	ctx := context.Context(ex.g)
	// The virtual host's retry policy applies to routes without one.
	p := a.RetryPolicy
	if p == nil && vh != nil {
		p = vh.RetryPolicy
	}
	if !ex.prepareBody(ctx, p, bufferLimit(ex.st, vh, rt)) {
		return
	}
	// Envoy's route timeout starts once the request was received and
	// spans every attempt and back-off.
	if a.Timeout > 0 {
		ex.g.startRoute(a.Timeout)
	}
	if ex.stream != nil {
		// Registered after the guard's release, so run before it.
		defer ex.abortReadsWhenDone(ctx)()
	}
	ex.attempts(ctx, c, vh, rt, wc, p, hash, hasHash)
}

// bufferLimit is how much of a request body may be kept for retries: the
// listener's per_connection_buffer_limit_bytes (1 MiB by default), lowered
// by the route's per_request_buffer_limit_bytes, else the virtual host's
// (Envoy takes the minimum of the two).
func bufferLimit(st *State, vh *config.VirtualHost, rt *config.Route) int {
	limit := int(st.BufferLimit)
	if limit <= 0 {
		limit = defaultBufferLimit
	}
	per := rt.PerRequestBufferLimitBytes
	if per == 0 && vh != nil {
		per = vh.PerRequestBufferLimitBytes
	}
	if per > 0 {
		limit = min(limit, int(per))
	}
	return limit
}

// prepareBody sets up the request body: streamed when it cannot be
// retried, buffered (up to the listener's buffer limit) when it may be.
// false means the client was answered (or is gone).
func (ex *exchange) prepareBody(ctx context.Context, p *config.RetryPolicy, limit int) bool {
	r := ex.r
	if r.Body == nil || r.Body == http.NoBody {
		ex.g.disarmRequest() // the whole request is in
		return true
	}
	ex.body = &countingBody{rc: r.Body}
	ex.body.g.Store(ex.g)
	if p == nil || p.NumRetries == 0 {
		ex.stream = ex.body
		return true
	}
	err := ex.bufferBody(ctx, limit)
	switch {
	case err == nil, err == errBodyTooLarge:
		return true
	case ex.ended(errRequestTimeout):
		ex.localReply(http.StatusRequestTimeout, "", "request timeout")
	case ex.ended(errStreamIdle):
		ex.localReply(http.StatusRequestTimeout, accesslog.StreamIdleTimeout, "stream timeout")
	case r.Context().Err() != nil:
		ex.localReply(0, accesslog.DownstreamConnTermination, "")
	default:
		ex.localReply(http.StatusBadRequest, flagDownstreamProtocolError, "invalid request body")
	}
	return false
}

// ended reports whether the request's guard ended with cause.
func (ex *exchange) ended(cause error) bool { return ex.g != nil && ex.g.Cause() == cause }

// classify maps an upstream error to Envoy's status and response flag.
// ctx is the attempt's context (the guard, or a per-try one under it).
func (ex *exchange) classify(ctx context.Context, err error) (int, string, string) {
	switch {
	// Our own timeouts first: when they cut the client's body, net/http
	// also cancels the request's context.
	case ex.ended(errRequestTimeout):
		return http.StatusRequestTimeout, "", "request timeout"
	case ex.ended(errStreamIdle):
		return http.StatusRequestTimeout, accesslog.StreamIdleTimeout, "stream timeout"
	case ex.r.Context().Err() != nil:
		return 0, accesslog.DownstreamConnTermination, ""
	case ex.ended(errRouteTimeout), ctx.Err() == context.DeadlineExceeded, tryIdledOut(ctx):
		return http.StatusGatewayTimeout, accesslog.UpstreamRequestTimeout, "upstream request timeout"
	case cluster.IsConnectError(err):
		return http.StatusServiceUnavailable, accesslog.UpstreamConnectionFailure,
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	case isProtocolError(err):
		return http.StatusBadGateway, accesslog.UpstreamProtocolError, "upstream protocol error"
	case isStreamReset(err):
		return http.StatusServiceUnavailable, accesslog.UpstreamRemoteReset,
			"upstream connect error or disconnect/reset before headers. reset reason: remote reset"
	}
	return http.StatusServiceUnavailable, accesslog.UpstreamConnTermination,
		"upstream connect error or disconnect/reset before headers. reset reason: connection termination"
}

// localReply answers from the proxy itself (Envoy's local reply). A gRPC
// request gets a Trailers-Only gRPC answer instead (HTTP 200, grpc-status
// mapped from the HTTP code as Envoy does); the access log keeps the HTTP
// code.
func (ex *exchange) localReply(code int, flag, body string) {
	ex.entry.Status, ex.entry.Flags = code, flag
	if code == 0 {
		return // the downstream is gone
	}
	hdr := ex.w.Header()
	ex.abandonBody()
	ex.attemptCountHeader()
	if strings.HasPrefix(ex.r.Header.Get("Content-Type"), "application/grpc") {
		hdr.Set("Content-Type", "application/grpc")
		hdr.Set("Grpc-Status", strconv.Itoa(grpcStatus(code)))
		if body != "" {
			hdr.Set("Grpc-Message", url.PathEscape(body))
		}
		ex.w.WriteHeader(http.StatusOK)
		return
	}
	if body != "" {
		hdr.Set("Content-Type", "text/plain")
	}
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	ex.w.WriteHeader(code)
	n, _ := io.WriteString(ex.w, body)
	ex.entry.BytesSent = int64(n)
}

// attemptCountHeader tells the client how many attempts the request took
// (x-envoy-attempt-count, when the virtual host asks for it).
func (ex *exchange) attemptCountHeader() {
	if ex.countInResponse && ex.entry.Attempts > 0 {
		ex.w.Header()["X-Envoy-Attempt-Count"] = []string{strconv.Itoa(ex.entry.Attempts)}
	}
}

// abandonBody makes sure a local reply does not wait for a request body
// nobody will read: net/http would otherwise read (up to 256 KiB of) it
// before answering an HTTP/1.1 request, and a stalled client would hold
// the proxy. Reads end now, and the connection closes after the reply.
func (ex *exchange) abandonBody() {
	if ex.body == nil || ex.body.eof.Load() || ex.r.ProtoMajor != 1 {
		return
	}
	ex.w.Header().Set("Connection", "close")
	http.NewResponseController(ex.w).SetReadDeadline(time.Now())
}

// grpcStatus maps an HTTP status to a gRPC code (Envoy's
// Grpc::Utility::httpToGrpcStatus, the same table as gRPC's
// doc/http-grpc-status-mapping.md).
func grpcStatus(code int) int {
	switch code {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

func (ex *exchange) finish() {
	e := &ex.entry
	e.Duration = time.Since(e.Start)
	if ex.body != nil {
		e.BytesReceived = ex.body.n.Load()
		ex.body.g.Store(nil) // a body writer may outlive the exchange
	}
	if ex.replay != nil {
		ex.replay.release()
	}
	if pb, ok := ex.stream.(*prefixedBody); ok {
		pb.Close() // in case no attempt took it
	}
	if ex.extraFlag != "" {
		if e.Flags == "" {
			e.Flags = ex.extraFlag
		} else {
			e.Flags += "," + ex.extraFlag
		}
	}
	if m := ex.h.metrics; m != nil {
		name := e.UpstreamCluster
		if name == "" {
			name = "-"
		}
		cm := m.cluster(name)
		cm.count(e.Status)
		cm.latency.Observe(e.Duration.Seconds())
		if e.Attempts > 1 || ex.retryEnd != retryNone {
			cm.countRetries(e.Attempts-1, ex.retryEnd)
		}
	}
	if !ex.h.access.Enabled() {
		return
	}
	r := ex.r
	e.Method, e.Authority, e.Path, e.Protocol, e.Listener = r.Method, r.Host, r.RequestURI, r.Proto, ex.st.Listener
	e.Downstream = r.RemoteAddr
	if e.RequestID == "" {
		e.RequestID = r.Header.Get("X-Request-Id")
	}
	ex.h.access.Log(e)
}
