package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/router"
)

// hopByHop are the connection-scoped headers of RFC 9110 section 7.6.1
// plus the legacy ones every proxy strips (Keep-Alive, Proxy-Connection).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Shared header values. Never modified in place: every mutation replaces
// the slice (see mutate), so sharing them between requests is safe and
// saves an allocation each.
var (
	valueHTTP        = []string{"http"}
	valueHTTPS       = []string{"https"}
	valueTrailers    = []string{"trailers"}
	valueConnUpgrade = []string{"Upgrade"}
)

func isHopByHop(k string) bool {
	for _, h := range hopByHop {
		if k == h {
			return true
		}
	}
	return false
}

// copyHeader copies src into dst without hop-by-hop headers, including the
// ones src's Connection header names. Value slices are shared: neither side
// is modified in place afterwards (mutations replace slices).
func copyHeader(dst, src http.Header) {
	conn := src["Connection"]
	for k, vs := range src {
		if isHopByHop(k) || len(conn) > 0 && namedInConnection(conn, k) {
			continue
		}
		dst[k] = vs
	}
}

func namedInConnection(conn []string, k string) bool {
	for _, v := range conn {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), k) {
				return true
			}
		}
	}
	return false
}

func upgradeType(h http.Header) string {
	if !headerHasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), token) {
				return true
			}
		}
	}
	return false
}

// outboundHeader fills dst with the upstream request's headers and returns
// its request-target (path and query) and Host; the inbound request is not
// modified.
func (ex *exchange) outboundHeader(dst http.Header, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, host *cluster.Host) (path, query, authority string) {
	r := ex.r
	a := rt.Forward
	path, query = router.SplitTarget(r)
	rewritten := false
	if p, ok := ex.st.Routes.RewritePath(rt, path); ok {
		path, rewritten = p, true
	}
	copyHeader(dst, r.Header)
	if rewritten {
		// Envoy tells the upstream what the client asked for.
		dst["X-Envoy-Original-Path"] = []string{r.RequestURI}
	}
	if headerHasToken(r.Header["Te"], "trailers") {
		dst["Te"] = valueTrailers // gRPC needs it end to end
	}
	if up := upgradeType(r.Header); up != "" {
		dst["Connection"] = valueConnUpgrade
		dst["Upgrade"] = []string{up}
	}
	authority = r.Host
	switch {
	case a.HostRewriteLiteral != "":
		authority = a.HostRewriteLiteral
	case a.AutoHostRewrite, authority == "":
		authority = host.Address
	}
	hcm := ex.st.HCM
	if hcm == nil {
		hcm = &config.HTTPConnectionManager{}
	}
	if hcm.UseRemoteAddress {
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if prior := dst["X-Forwarded-For"]; len(prior) > 0 {
				ip = strings.Join(prior, ", ") + ", " + ip
			}
			dst["X-Forwarded-For"] = ex.value(0, ip)
		}
	}
	if hcm.UseRemoteAddress || len(dst["X-Forwarded-Proto"]) == 0 {
		if r.TLS != nil {
			dst["X-Forwarded-Proto"] = valueHTTPS
		} else {
			dst["X-Forwarded-Proto"] = valueHTTP
		}
	}
	id := dst.Get("X-Request-Id")
	if id == "" && hcm.GenerateRequestID {
		// One id for every attempt of the request.
		if id = ex.entry.RequestID; id == "" {
			id = newRequestID()
		}
		dst["X-Request-Id"] = ex.value(1, id)
	}
	ex.entry.RequestID = id
	if vh != nil && vh.IncludeRequestAttemptCount {
		// Envoy overrides any value a previous hop set; attempts count
		// from 1.
		dst["X-Envoy-Attempt-Count"] = ex.value(2, strconv.Itoa(ex.entry.Attempts))
	}
	ex.mutateRequest(dst, vh, rt, wc)
	return path, query, authority
}

// send makes one attempt on host: over the host's own HTTP/1.1 pool, or
// net/http's HTTP/2 transport.
func (ex *exchange) send(ctx context.Context, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, host *cluster.Host) (*http.Response, error) {
	if host.Protocol() == config.HTTP2 {
		return host.Transport().RoundTrip(ex.outbound(ctx, vh, rt, wc, host))
	}
	hdr := headerPool.Get().(http.Header)
	defer func() {
		clear(hdr)
		headerPool.Put(hdr)
	}()
	req := cluster.HTTP1Request{Method: ex.r.Method, Header: hdr, Trailer: ex.r.Trailer}
	// The map is written out and cleared before SendHTTP1 returns: its
	// generated values may live in the exchange.
	ex.scratchValues = true
	req.Path, req.Query, req.Host = ex.outboundHeader(hdr, vh, rt, wc, host)
	ex.scratchValues = false
	switch {
	case ex.replay != nil && len(ex.replay.data) <= cluster.InlineBodyLimit:
		req.BodyBytes, req.ContentLength = ex.replay.data, ex.r.ContentLength
	case ex.replay != nil:
		// Written on a goroutine that may outlast the attempt: a reader
		// holding the buffer.
		req.Body, req.ContentLength = ex.replay.reader(), ex.r.ContentLength
	case ex.stream != nil:
		req.Body, req.ContentLength = ex.stream, ex.r.ContentLength
	}
	return host.SendHTTP1(ctx, &req)
}

// value returns a one-value header slice: in the exchange's scratch slot i
// while scratchValues is set (the HTTP/1.1 path), else a fresh one.
func (ex *exchange) value(i int, v string) []string {
	if !ex.scratchValues {
		return []string{v}
	}
	ex.scratch[i] = v
	return ex.scratch[i : i+1 : i+1]
}

// headerPool holds the upstream requests' header maps (HTTP/1.1: the map
// is written out before SendHTTP1 returns and not kept).
var headerPool = sync.Pool{New: func() any { return make(http.Header, 16) }}

// outbound builds the upstream request for net/http's transport.
func (ex *exchange) outbound(ctx context.Context, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, host *cluster.Host) *http.Request {
	r := ex.r
	out := r.WithContext(ctx)
	out.Header = make(http.Header, len(r.Header)+4)
	path, query, authority := ex.outboundHeader(out.Header, vh, rt, wc, host)
	u := &url.URL{Scheme: "http", Host: host.Address, RawQuery: query}
	if strings.HasPrefix(path, "//") {
		if p, err := url.PathUnescape(path); err == nil {
			u.Path, u.RawPath = p, path
		}
	} else {
		// Opaque sends the path exactly as received (no re-encoding).
		u.Opaque = path
	}
	out.URL = u
	out.RequestURI = ""
	out.Close = false
	out.Host = authority
	switch {
	case ex.replay != nil:
		out.Body = ex.replay.reader()
	case ex.stream != nil:
		out.Body = ex.stream
	default:
		out.Body, out.ContentLength = nil, 0
	}
	return out
}

// mutateRequest applies request header mutations, most specific level
// first so that the route configuration level wins on overwrite (Envoy's
// default, most_specific_header_mutations_wins false).
func (ex *exchange) mutateRequest(h http.Header, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster) {
	if wc != nil {
		mutate(h, wc.RequestHeadersToRemove, wc.RequestHeadersToAdd)
	}
	mutate(h, rt.RequestHeadersToRemove, rt.RequestHeadersToAdd)
	if vh != nil {
		mutate(h, vh.RequestHeadersToRemove, vh.RequestHeadersToAdd)
	}
	if rc := ex.st.Routes.Config(); rc != nil {
		mutate(h, rc.RequestHeadersToRemove, rc.RequestHeadersToAdd)
	}
}

func (ex *exchange) mutateResponse(h http.Header, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster) {
	if wc != nil {
		mutate(h, wc.ResponseHeadersToRemove, wc.ResponseHeadersToAdd)
	}
	mutate(h, rt.ResponseHeadersToRemove, rt.ResponseHeadersToAdd)
	if vh != nil {
		mutate(h, vh.ResponseHeadersToRemove, vh.ResponseHeadersToAdd)
	}
	if rc := ex.st.Routes.Config(); rc != nil {
		mutate(h, rc.ResponseHeadersToRemove, rc.ResponseHeadersToAdd)
	}
}

// mutate removes, then adds (Envoy's HeaderParser order).
func mutate(h http.Header, remove []string, add []config.HeaderValueOption) {
	for _, k := range remove {
		h.Del(k)
	}
	for _, o := range add {
		k := http.CanonicalHeaderKey(o.Key)
		if o.Append {
			// Append to a fresh slice: value slices may be shared with
			// the other side's header map.
			vs := h[k]
			h[k] = append(vs[:len(vs):len(vs)], o.Value)
		} else {
			h[k] = []string{o.Value}
		}
	}
}

// requestHash evaluates the route's hash policies as Envoy does: each
// policy that yields a value is folded into the hash; a terminal one that
// yields stops the evaluation. A cookie policy with a TTL whose cookie is
// absent generates it (returned as a Set-Cookie value for the response),
// its value derived from the client address as Envoy's is, so that the
// client sticks to the host from this request on.
func requestHash(ps []config.HashPolicy, r *http.Request) (uint64, bool, string) {
	var h uint64
	have := false
	setCookie := ""
	for i := range ps {
		p := &ps[i]
		var v string
		ok := false
		switch {
		case p.Header != "":
			if vs := r.Header.Values(p.Header); len(vs) > 0 {
				v, ok = strings.Join(vs, ","), true
			}
		case p.Cookie != "":
			if c, err := r.Cookie(p.Cookie); err == nil {
				v, ok = c.Value, true
			} else if p.CookieTTL > 0 {
				v, ok = strconv.FormatUint(cluster.HashString(r.RemoteAddr), 16), true
				c := &http.Cookie{Name: p.Cookie, Value: v, Path: p.CookiePath, MaxAge: int(p.CookieTTL / time.Second), HttpOnly: true}
				setCookie = c.String()
			}
		case p.SourceIP:
			if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
				v, ok = ip, true
			}
		case p.QueryParam != "":
			_, query := router.SplitTarget(r)
			v, ok = router.QueryValue(query, p.QueryParam)
		}
		if !ok {
			continue
		}
		h = cluster.CombineHash(h, have, cluster.HashString(v))
		have = true
		if p.Terminal {
			break
		}
	}
	return h, have, setCookie
}

// countingBody counts request body bytes, as activity for the stream idle
// timeout; its end disarms request_timeout. A transport may read it from
// its own goroutine, hence the atomics.
// The guard is detached when the exchange ends (guards are pooled; a body
// writer may still read).
type countingBody struct {
	rc  io.ReadCloser
	n   atomic.Int64
	g   atomic.Pointer[guard]
	eof atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n.Add(int64(n))
		b.g.Load().touch()
	}
	if err == io.EOF {
		b.eof.Store(true)
		b.g.Load().disarmRequest()
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

func isProtocolError(err error) bool {
	if cluster.IsProtocolError(err) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "malformed") || strings.Contains(s, "unsupported transfer encoding") ||
		strings.Contains(s, "PROTOCOL_ERROR") || strings.Contains(s, "invalid header")
}

func isStreamReset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "stream error") || strings.Contains(s, "RST_STREAM")
}
