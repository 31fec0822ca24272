package cluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// HTTP1Request is what SendHTTP1 writes upstream: the request line and the
// headers exactly as given (no header is added but Host and the body's
// framing), and the body. The proxy builds it straight from the inbound
// request; nothing in it is retained after SendHTTP1 returns, except Body
// and Trailer, which a request body larger than InlineBodyLimit (or of
// unknown length) is written from on a goroutine of its own until it ends.
type HTTP1Request struct {
	Method string
	// Path is the request-target's path as sent ("/" when empty); Query
	// is its query without "?", written only when not empty.
	Path, Query string
	Host        string // the Host header
	Header      http.Header
	// BodyBytes is a request body held in memory (it can be sent again on
	// a fresh connection); Body is one read once, with ContentLength (-1:
	// unknown, sent chunked). At most one is set; Body is closed once
	// written, as a RoundTripper does.
	BodyBytes     []byte
	Body          io.ReadCloser
	ContentLength int64
	// Trailer: request trailers (sent after a chunked body; read when the
	// body has ended, as net/http fills them).
	Trailer http.Header
}

// ProtocolError is a malformed upstream response (Envoy's UPE) or a
// request that cannot be written as HTTP/1.1.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "upstream protocol error: " + e.Msg }

// IsProtocolError reports whether err is (or wraps) a *ProtocolError.
func IsProtocolError(err error) bool {
	var pe *ProtocolError
	return errors.As(err, &pe)
}

// Abortable is a context that runs one abort function when it ends,
// without the allocations of context.AfterFunc: the proxy's per-request
// guard. SendHTTP1 uses it when ctx implements it.
type Abortable interface {
	context.Context
	// SetAbort registers f, to run once (on any goroutine) when the
	// context ends; false when it already ended (f is not registered).
	SetAbort(f func()) bool
	// ClearAbort unregisters f; false when f ran or is running.
	ClearAbort() bool
}

// errClosedBeforeResponse: the connection ended before a response (Envoy's
// UC, "connection termination").
var errClosedBeforeResponse = errors.New("upstream connection closed before the response")

const (
	// InlineBodyLimit: a request body of known length up to this size is
	// written by the request's goroutine together with the headers; it
	// fits in any TCP send buffer, so the write cannot wait for an
	// upstream that answers without reading. Larger and chunked bodies
	// are written by a goroutine of their own while the response is read
	// (an upstream may answer early).
	InlineBodyLimit = 16 << 10
	// maxResponseHead bounds a response's status line and headers (and
	// the trailers).
	maxResponseHead = 256 << 10
	// maxIdlePerHost is the most idle connections kept per host.
	maxIdlePerHost = 256
	// checkIdleAfter: a connection idle longer than this is checked for a
	// close by the upstream (a non-blocking peek) before it is reused.
	checkIdleAfter = time.Second
	// max1xx is how many informational responses may precede the final
	// one (net/http's limit).
	max1xx = 5
	// maxWriteWait is how long a finished response waits for its request
	// body's writer before the connection is given up instead of reused.
	maxWriteWait = 50 * time.Millisecond
)

// h1Pool is a host's HTTP/1.1 keep-alive pool. A request takes a connection
// (the most recently used idle one, else a new one), writes on it and reads
// the response on its own goroutine, and gives the connection back when the
// response body was read to its end and both sides allow reuse. There is no
// goroutine per connection: an idle connection closed by the upstream is
// found when it is next used (a peek when it was idle for a while, else the
// request is sent again on a new connection when that is safe), and idle
// connections expire after idleConnTimeout.
type h1Pool struct {
	h      *Host
	dialer net.Dialer

	mu      sync.Mutex
	idle    []*h1Conn // oldest first
	waiters []*h1Waiter
	sweep   *time.Timer // armed while idle connections exist
}

type h1Waiter struct{ ch chan h1Result }

type h1Result struct {
	c   *h1Conn
	err error
}

func newH1Pool(h *Host) *h1Pool {
	return &h1Pool{h: h, dialer: net.Dialer{Timeout: h.timeout, KeepAlive: 30 * time.Second}}
}

// SendHTTP1 sends req on one of the host's HTTP/1.1 connections and returns
// the response once its headers arrived. Only for HTTP/1.1 hosts. The
// response, its Header and its Body belong to the connection: they are
// valid until Body.Close, which must be called (the connection is reused
// when the body was read to its end). Value slices of Header and Trailer may
// be kept after that. Status (the reason phrase) is left empty: the
// proxy sends its own. A 101 response's Body is the upgraded connection
// (io.ReadWriteCloser, with CloseWrite); ctx then no longer applies to it.
// ctx ending aborts the exchange: reads and writes fail at once.
//
// Errors: *ConnectError, *OverflowError (circuit breakers, as for
// Transport), *ProtocolError, ctx's error, or a connection error.
func (h *Host) SendHTTP1(ctx context.Context, req *HTTP1Request) (*http.Response, error) {
	p := h.pool()
	if err := validRequest(req); err != nil {
		closeBody(req)
		return nil, err
	}
	for fresh := false; ; fresh = true {
		c, reused, err := p.get(ctx, fresh)
		if err != nil {
			closeBody(req)
			return nil, err
		}
		res, err := c.roundTrip(ctx, req)
		if err == nil {
			return res, nil
		}
		if reused && c.nothingRead && ctx.Err() == nil && resendable(req) {
			// The upstream closed the idle connection as it was reused:
			// nothing was processed, send it again on a new one (as
			// net/http does for idempotent requests).
			continue
		}
		closeBody(req)
		return nil, err
	}
}

func closeBody(req *HTTP1Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// resendable: the request can be written again as it was (no body or one
// in memory) and may be sent twice (an idempotent method, RFC 9110 section
// 9.2.2, or an idempotency key, as net/http decides).
func resendable(req *HTTP1Request) bool {
	if req.Body != nil {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return req.Header["Idempotency-Key"] != nil || req.Header["X-Idempotency-Key"] != nil
}

// get returns a connection: an idle one unless fresh, else a new one. At
// the cluster's max_connections the request is pending (max_pending_requests)
// until a connection is handed back or a slot frees for a new one.
func (p *h1Pool) get(ctx context.Context, fresh bool) (*h1Conn, bool, error) {
	if !fresh {
		if c := p.popIdle(); c != nil {
			return c, true, nil
		}
	}
	st := p.h.st
	cb := st.breakers()
	if st.conns.Load() < cb.Limit(config.ThresholdConnections) {
		c, err := p.dial(ctx)
		return c, false, err
	}
	if st.pending.Add(1) > cb.Limit(config.ThresholdPendingRequests) {
		st.pending.Add(-1)
		st.overflow[BreakerPending].Add(1)
		return nil, false, &OverflowError{Cluster: st.name, Breaker: BreakerPending}
	}
	defer st.pending.Add(-1)
	w := &h1Waiter{ch: make(chan h1Result, 1)}
	p.mu.Lock()
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	if c := p.popIdle(); c != nil { // handed back meanwhile
		if p.removeWaiter(w) {
			return c, true, nil
		}
		p.put(c)
	} else {
		// As net/http's Transport: dial for the waiter (waiting for a
		// slot up to the connect timeout) while any connection handed back
		// first serves it; a dial nobody needs any more joins the pool.
		go p.dialFor(w)
	}
	select {
	case r := <-w.ch:
		return r.c, r.c != nil, r.err
	case <-ctx.Done():
		if !p.removeWaiter(w) {
			if r := <-w.ch; r.c != nil {
				p.put(r.c)
			}
		}
		return nil, false, ctx.Err()
	}
}

func (p *h1Pool) dialFor(w *h1Waiter) {
	c, err := p.dial(context.Background())
	if err != nil {
		if p.removeWaiter(w) {
			w.ch <- h1Result{err: err}
		}
		return
	}
	p.put(c)
}

// removeWaiter takes w out of the queue; false when a connection was
// already handed to it.
func (p *h1Pool) removeWaiter(w *h1Waiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func (p *h1Pool) dial(ctx context.Context) (*h1Conn, error) {
	nc, err := p.h.dial(ctx, &p.dialer, "tcp", true)
	if err != nil {
		return nil, err
	}
	c := &h1Conn{p: p, nc: nc, hdr: make(http.Header, 8), wdone: make(chan error, 1)}
	c.takeBufs()
	c.abortFn = c.abort
	c.body.c = c
	if cc, ok := nc.(*countedConn); ok {
		if sc, ok := cc.Conn.(syscall.Conn); ok {
			c.raw, _ = sc.SyscallConn()
		}
	}
	return c, nil
}

// popIdle takes the most recently used idle connection that is still
// usable.
func (p *h1Pool) popIdle() *h1Conn {
	now := time.Now()
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		idle := now.Sub(c.idleAt)
		if idle < checkIdleAfter || idle < idleConnTimeout && c.alive() {
			c.takeBufs()
			return c
		}
		c.nc.Close()
	}
}

// put gives a connection back: to the first waiting request, else to the
// idle list.
func (p *h1Pool) put(c *h1Conn) {
	p.mu.Lock()
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = append(p.waiters[:0], p.waiters[1:]...)
		p.mu.Unlock()
		w.ch <- h1Result{c: c}
		return
	}
	if len(p.idle) >= maxIdlePerHost {
		p.mu.Unlock()
		c.nc.Close()
		return
	}
	c.idleAt = time.Now()
	c.giveBufs()
	p.idle = append(p.idle, c)
	if p.sweep == nil {
		p.sweep = time.AfterFunc(idleConnTimeout, p.expire)
	}
	p.mu.Unlock()
}

// expire closes the connections idle for idleConnTimeout and re-arms for
// the next one to expire.
func (p *h1Pool) expire() {
	now := time.Now()
	p.mu.Lock()
	n := 0
	for n < len(p.idle) && now.Sub(p.idle[n].idleAt) >= idleConnTimeout {
		n++
	}
	old := make([]*h1Conn, n)
	copy(old, p.idle[:n])
	rest := copy(p.idle, p.idle[n:])
	clear(p.idle[rest:])
	p.idle = p.idle[:rest]
	if len(p.idle) > 0 && p.sweep != nil {
		p.sweep.Reset(idleConnTimeout - now.Sub(p.idle[0].idleAt))
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, c := range old {
		c.nc.Close()
	}
}

// closeIdle closes every idle connection; connections in use are closed
// or pooled again when their request ends.
func (p *h1Pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, c := range idle {
		c.nc.Close()
	}
}

// h1Conn is one pooled connection and the state of the exchange on it
// (one at a time).
type h1Conn struct {
	p       *h1Pool
	nc      net.Conn
	raw     syscall.RawConn // for the liveness peek; nil when unavailable
	br      *bufio.Reader
	bw      *bufio.Writer
	idleAt  time.Time
	abortFn func()

	// The current exchange.
	stop        func() bool // stops the ctx watch (context.AfterFunc), or
	ab          Abortable   // the ctx watch of an Abortable ctx
	reusable    bool        // neither side asked to close
	nothingRead bool        // the exchange failed before any response byte
	writing     bool        // a body goroutine was started
	wdone       chan error  // its result
	res         http.Response
	hdr         http.Header
	body        h1Body
	method      string

	// Scratch for parsing a head, reused.
	head  []byte
	spans []h1wire.Span
	vals  []string
	long  []byte
}

// An idle connection holds no buffers (issue 8: a sidecar with 10,000
// clusters keeps one idle connection per upstream it used, 8 KiB each):
// giveBufs returns them to pools as the connection joins the idle list,
// takeBufs gets them back when it is taken.
var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func (c *h1Conn) takeBufs() {
	if c.br == nil {
		c.br = readers.Get().(*bufio.Reader)
		c.br.Reset(c.nc)
	}
	if c.bw == nil {
		c.bw = writers.Get().(*bufio.Writer)
		c.bw.Reset(c.nc)
	}
}

// giveBufs pools the buffers unless they hold bytes (a reader with
// unsolicited bytes keeps them: alive reports the connection dead).
func (c *h1Conn) giveBufs() {
	if c.br != nil && c.br.Buffered() == 0 {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
	if c.bw != nil && c.bw.Buffered() == 0 {
		c.bw.Reset(nil)
		writers.Put(c.bw)
		c.bw = nil
	}
}

// unwatch stops watching the exchange's ctx; false when the abort ran or is
// running.
func (c *h1Conn) unwatch() bool {
	switch {
	case c.ab != nil:
		ok := c.ab.ClearAbort()
		c.ab = nil
		return ok
	case c.stop != nil:
		ok := c.stop()
		c.stop = nil
		return ok
	}
	return false // already unwatched
}

// abort runs when the exchange's ctx ends: every read and write on the
// connection fails from now on, in whatever goroutine.
func (c *h1Conn) abort() { c.nc.SetDeadline(aLongTimeAgo) }

var aLongTimeAgo = time.Unix(1, 0)

// alive peeks at an idle connection without blocking: false when the
// upstream closed it (or sent something unasked).
func (c *h1Conn) alive() bool {
	if c.br != nil && c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	ok := true
	err := c.raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read is the only sign of life: a byte is a response
		// nobody asked for, zero bytes the upstream's close.
		ok = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return ok && err == nil
}

// roundTrip writes req and reads the response head.
func (c *h1Conn) roundTrip(ctx context.Context, req *HTTP1Request) (*http.Response, error) {
	if ab, ok := ctx.(Abortable); ok {
		if !ab.SetAbort(c.abortFn) {
			c.p.put(c)
			return nil, ctx.Err()
		}
		c.ab, c.stop = ab, nil
	} else {
		c.ab, c.stop = nil, context.AfterFunc(ctx, c.abortFn)
	}
	c.reusable, c.nothingRead, c.writing, c.method = true, false, false, req.Method
	res, err := c.exchange(req)
	if err != nil {
		c.unwatch()
		c.nc.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if c.writing {
			// The body writer's error explains a failed read best (the
			// client's body failed, say), when it ended first.
			select {
			case werr := <-c.wdone:
				if werr != nil && !c.nothingRead {
					return nil, werr
				}
			default:
			}
		}
		return nil, err
	}
	return res, nil
}

func (c *h1Conn) exchange(req *HTTP1Request) (*http.Response, error) {
	cl, chunked := req.ContentLength, false
	switch {
	case req.BodyBytes != nil:
		if cl < 0 && len(req.Trailer) == 0 {
			cl = int64(len(req.BodyBytes))
		}
		chunked = cl < 0
	case req.Body != nil:
		chunked = cl < 0
	default:
		cl = 0
	}
	c.writeHead(req, cl, chunked)
	inline := req.Body == nil || !chunked && cl <= InlineBodyLimit
	if inline {
		if err := c.writeBody(req, cl, chunked); err != nil {
			return nil, err
		}
		if err := c.bw.Flush(); err != nil {
			return nil, err
		}
	} else {
		// The headers go out now; the body follows as it comes.
		if err := c.bw.Flush(); err != nil {
			closeBody(req)
			return nil, err
		}
		c.writing = true
		body, trailer := req.Body, req.Trailer
		go func() {
			err := c.streamBody(body, trailer, cl, chunked)
			if err != nil {
				c.nc.SetDeadline(aLongTimeAgo) // the read fails too
			}
			c.wdone <- err
		}()
	}
	return c.readResponse()
}

// writeHead buffers the request line and the headers.
func (c *h1Conn) writeHead(req *HTTP1Request, cl int64, chunked bool) {
	bw := c.bw
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	if req.Path == "" {
		bw.WriteByte('/')
	} else {
		bw.WriteString(req.Path)
	}
	if req.Query != "" {
		bw.WriteByte('?')
		bw.WriteString(req.Query)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	for k, vs := range req.Header {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !first {
					bw.WriteByte(',')
				}
				first = false
				bw.WriteString(k)
			}
			bw.WriteString("\r\n")
		}
	case cl > 0 || cl == 0 && req.Method != "GET" && req.Method != "HEAD":
		// net/http's rule: a zero length is sent except on GET and HEAD.
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), cl, 10))
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// writeBody buffers an inline body (in memory, or read from Body).
func (c *h1Conn) writeBody(req *HTTP1Request, cl int64, chunked bool) error {
	switch {
	case req.BodyBytes != nil:
		if chunked {
			c.writeChunk(req.BodyBytes)
			c.endChunks(req.Trailer)
		} else {
			c.bw.Write(req.BodyBytes)
		}
	case req.Body != nil:
		defer req.Body.Close()
		if cl > 0 {
			n, err := c.bw.ReadFrom(io.LimitReader(req.Body, cl))
			if err != nil {
				return err
			}
			if n != cl {
				return &ProtocolError{Msg: "request body shorter than its Content-Length"}
			}
		}
	}
	return nil
}

// streamBody writes a body as it is read, flushing each piece.
func (c *h1Conn) streamBody(body io.ReadCloser, trailer http.Header, cl int64, chunked bool) error {
	defer body.Close()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var sent int64
	for {
		if !chunked && sent == cl {
			break
		}
		b := buf
		if !chunked && cl-sent < int64(len(b)) {
			b = b[:cl-sent]
		}
		n, rerr := body.Read(b)
		if n > 0 {
			sent += int64(n)
			if chunked {
				c.writeChunk(b[:n])
			} else {
				c.bw.Write(b[:n])
			}
			if err := c.bw.Flush(); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if chunked {
		c.endChunks(trailer)
	} else if sent != cl {
		return &ProtocolError{Msg: "request body shorter than its Content-Length"}
	}
	return c.bw.Flush()
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (c *h1Conn) writeChunk(p []byte) {
	if len(p) == 0 {
		return
	}
	c.bw.Write(strconv.AppendInt(c.bw.AvailableBuffer(), int64(len(p)), 16))
	c.bw.WriteString("\r\n")
	c.bw.Write(p)
	c.bw.WriteString("\r\n")
}

func (c *h1Conn) endChunks(trailer http.Header) {
	c.bw.WriteString("0\r\n")
	for k, vs := range trailer {
		if !h1wire.ValidToken(k) {
			continue
		}
		for _, v := range vs {
			if h1wire.ValidFieldValue(v) {
				c.bw.WriteString(k)
				c.bw.WriteString(": ")
				c.bw.WriteString(v)
				c.bw.WriteString("\r\n")
			}
		}
	}
	c.bw.WriteString("\r\n")
}

// readResponse reads the status line and headers of the final response
// (informational ones are skipped) and sets up its body.
func (c *h1Conn) readResponse() (*http.Response, error) {
	for n := 0; ; n++ {
		if err := c.readHead(n == 0); err != nil {
			return nil, err
		}
		code := c.res.StatusCode
		if code >= 200 || code == http.StatusSwitchingProtocols {
			break
		}
		if n >= max1xx {
			return nil, &ProtocolError{Msg: "too many 1xx responses"}
		}
	}
	res, hdr := &c.res, c.hdr
	if vs := hdr["Connection"]; vs != nil && headerHasToken(vs, "close") {
		c.reusable = false
	}
	if res.ProtoMinor == 0 && !headerHasToken(hdr["Connection"], "keep-alive") {
		c.reusable = false
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		if !c.unwatch() {
			return nil, errClosedBeforeResponse // aborted as it switched
		}
		c.reusable = false
		res.Body = &upgradedConn{c: c}
		res.ContentLength = -1
		return res, nil
	}
	// Trailers the response announces (hop-by-hop "Trailer" header).
	if vs := hdr["Trailer"]; vs != nil {
		// The server reads declared trailers from the client's header map
		// after the handler returned: these values stay this response's.
		c.vals = nil
		res.Trailer = http.Header{}
		for _, v := range vs {
			for k := range splitTokens(v) {
				k = http.CanonicalHeaderKey(k)
				switch k {
				case "Transfer-Encoding", "Trailer", "Content-Length":
					continue
				}
				res.Trailer[k] = nil
			}
		}
	}
	b := &c.body
	b.reset()
	te := hdr["Transfer-Encoding"]
	if te != nil && res.ProtoMinor == 0 && res.ProtoMajor == 1 {
		te = nil // HTTP/1.0 has no transfer codings (net/http ignores them)
		delete(hdr, "Transfer-Encoding")
	}
	if te != nil {
		if len(te) != 1 || !asciiEqualFold(h1wire.TrimOWS(te[0]), "chunked") {
			return nil, &ProtocolError{Msg: "unsupported transfer encoding " + te[0]}
		}
		// RFC 9112 section 6.3: chunked wins, and a proxy drops the
		// Content-Length (as net/http does).
		delete(hdr, "Content-Length")
	}
	noBody := c.method == "HEAD" || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified
	cl := int64(-1)
	if vs := hdr["Content-Length"]; vs != nil && te == nil {
		n, ok := parseContentLength(vs)
		if !ok {
			return nil, &ProtocolError{Msg: "malformed Content-Length"}
		}
		cl = n
	}
	switch {
	case noBody:
		b.mode = bodyNone
		res.ContentLength = max(cl, 0)
		if c.method != "HEAD" {
			res.ContentLength = 0
		}
	case te != nil:
		b.mode = bodyChunked
		res.ContentLength = -1
	case cl >= 0:
		b.mode, b.left = bodyFixed, cl
		res.ContentLength = cl
	default:
		// Delimited by the connection's close.
		b.mode = bodyUntilClose
		c.reusable = false
		res.ContentLength = -1
	}
	if b.mode == bodyNone || b.mode == bodyFixed && cl == 0 {
		b.done = true
	}
	res.Body = b
	return res, nil
}

// readHead reads one response head into c.res and c.hdr.
func (c *h1Conn) readHead(first bool) error {
	line, err := c.readLine()
	if err != nil {
		if first && len(line) == 0 && (err == io.EOF || isConnReset(err)) {
			c.nothingRead = true
			return errClosedBeforeResponse
		}
		return err
	}
	res := &c.res
	*res = http.Response{}
	if err := parseStatusLine(res, line); err != nil {
		return err
	}
	clear(c.hdr)
	res.Header = c.hdr
	return c.readFields(c.hdr, true)
}

// readFields reads header (or trailer) fields up to the empty line into
// dst.
func (c *h1Conn) readFields(dst http.Header, reuseVals bool) error {
	head, spans := c.head[:0], c.spans[:0]
	for {
		line, err := c.readLine()
		if err != nil {
			return h1wire.Unexpected(err)
		}
		if len(line) == 0 {
			break
		}
		if len(head)+len(line) > maxResponseHead {
			return &ProtocolError{Msg: "response headers too large"}
		}
		if line[0] == ' ' || line[0] == '\t' {
			return &ProtocolError{Msg: "malformed header: obsolete line folding"}
		}
		if head, spans, err = h1wire.AppendField(head, spans, line); err != nil {
			if err == h1wire.ErrFieldValue {
				return &ProtocolError{Msg: "malformed header value"}
			}
			return &ProtocolError{Msg: "malformed header line"}
		}
	}
	c.head, c.spans = head, spans
	if len(spans) == 0 {
		return nil
	}
	// One string for all the fields (strings are handed on, to the
	// client's response, and outlive the exchange). The value array is the
	// connection's for response headers: the server copies the client's
	// header values (Header.Clone at WriteHeader) before the connection is
	// reused; trailers, which it reads at the end, get their own.
	all := string(head)
	var vals []string
	if reuseVals {
		vals = slices.Grow(c.vals[:0], len(spans))[:len(spans)]
		c.vals = vals
	} else {
		vals = make([]string, len(spans))
	}
	for i, s := range spans {
		k := http.CanonicalHeaderKey(all[s.K0:s.K1])
		vals[i] = all[s.V0:s.V1]
		if prev, ok := dst[k]; ok {
			dst[k] = append(prev, vals[i])
		} else {
			dst[k] = vals[i : i+1 : i+1]
		}
	}
	return nil
}

// readLine returns the next line without its line ending; the slice is
// valid until the next read.
func (c *h1Conn) readLine() ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.long) > maxResponseHead {
				return nil, &ProtocolError{Msg: "response header line too long"}
			}
			line, err = c.br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return line, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// parseStatusLine parses "HTTP/1.x 200 reason".
func parseStatusLine(res *http.Response, line []byte) error {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[8] != ' ' || line[7] < '0' || line[7] > '9' {
		return &ProtocolError{Msg: "malformed HTTP response " + strconv.Quote(string(line[:min(len(line), 40)]))}
	}
	code := 0
	for _, d := range line[9:12] {
		if d < '0' || d > '9' {
			return &ProtocolError{Msg: "malformed HTTP status code " + strconv.Quote(string(line[9:12]))}
		}
		code = code*10 + int(d-'0')
	}
	if len(line) > 12 && line[12] != ' ' || code < 100 {
		return &ProtocolError{Msg: "malformed HTTP status code"}
	}
	res.StatusCode = code
	res.ProtoMajor, res.ProtoMinor = 1, int(line[7]-'0')
	if res.ProtoMinor == 0 {
		res.Proto = "HTTP/1.0"
	} else {
		res.Proto = "HTTP/1.1"
	}
	return nil
}

func parseContentLength(vs []string) (int64, bool) {
	var n int64 = -1
	for _, v := range vs {
		for f := range splitTokens(v) {
			if f == "" || f[0] < '0' || f[0] > '9' {
				return 0, false
			}
			m, err := strconv.ParseInt(f, 10, 64)
			if err != nil || n >= 0 && m != n {
				return 0, false
			}
			n = m
		}
	}
	return n, n >= 0
}

// finish ends the exchange when the body is closed: the connection goes
// back to the pool when the body was read to its end, the request body was
// all written, ctx did not end and both sides keep the connection open.
func (c *h1Conn) finish(done bool) {
	reuse := c.unwatch() && done && c.reusable
	if c.writing && reuse {
		// The response is complete; the body writer normally is too, or
		// about to be (net/http's Transport waits as long).
		select {
		case err := <-c.wdone:
			reuse = err == nil
		default:
			t := time.NewTimer(maxWriteWait)
			select {
			case err := <-c.wdone:
				reuse = err == nil
			case <-t.C:
				reuse = false // still writing: the body was not all sent
			}
			t.Stop()
		}
	}
	if reuse && c.br.Buffered() > 0 {
		reuse = false // unsolicited bytes after the response
	}
	if !reuse {
		c.nc.Close()
		return
	}
	c.p.put(c)
}

type bodyMode uint8

const (
	bodyNone bodyMode = iota
	bodyFixed
	bodyChunked
	bodyUntilClose
)

// h1Body reads a response body off its connection. It is the connection's
// (one per connection, reused): Close hands the connection on.
type h1Body struct {
	c        *h1Conn
	mode     bodyMode
	left     int64 // bytes left in the body (fixed) or in the chunk (chunked)
	inData   bool  // chunked: inside a chunk's data
	needCRLF bool  // chunked: the CRLF after a chunk's data is next
	done     bool  // read to its end
	closed   bool
	err      error
}

func (b *h1Body) reset() {
	c := b.c
	*b = h1Body{c: c}
}

var errBodyClosed = errors.New("read on closed response body")

func (b *h1Body) Read(p []byte) (int, error) {
	switch {
	case b.closed:
		return 0, errBodyClosed
	case b.err != nil:
		return 0, b.err
	case b.done:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case bodyFixed:
		n, err = b.readFixed(p)
	case bodyChunked:
		n, err = b.readChunked(p)
	case bodyUntilClose:
		n, err = b.c.br.Read(p)
		if err == io.EOF {
			b.done = true
		}
	}
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (b *h1Body) readFixed(p []byte) (int, error) {
	n, err := h1wire.ReadData(b.c.br, p, &b.left)
	if b.left == 0 {
		// EOF with the last bytes: the caller finishes (and the
		// connection is reused) without another Read.
		b.done = true
		return n, io.EOF
	}
	return n, h1wire.Unexpected(err)
}

// lastChunk is what ends a chunked body without trailers after a chunk's
// data.
const lastChunk = "\r\n0\r\n\r\n"

func (b *h1Body) readChunked(p []byte) (int, error) {
	br := b.c.br
	for !b.inData {
		if err := b.nextChunk(); err != nil {
			return 0, err
		}
		if b.done {
			return 0, io.EOF
		}
	}
	n, err := h1wire.ReadData(br, p, &b.left)
	if err != nil {
		return n, h1wire.Unexpected(err)
	}
	if b.left == 0 {
		b.inData, b.needCRLF = false, true
		// The end already buffered (no trailers): EOF with the last data.
		if br.Buffered() >= len(lastChunk) {
			if end, _ := br.Peek(len(lastChunk)); string(end) == lastChunk {
				br.Discard(len(lastChunk))
				b.done = true
				return n, io.EOF
			}
		}
	}
	return n, nil
}

// nextChunk reads a chunk-size line (after the previous chunk's CRLF), and
// the trailers after the last chunk.
func (b *h1Body) nextChunk() error {
	c := b.c
	if b.needCRLF {
		line, err := c.readLine()
		if err != nil {
			return h1wire.Unexpected(err)
		}
		if len(line) != 0 {
			return &ProtocolError{Msg: "malformed chunked encoding: no CRLF after chunk data"}
		}
		b.needCRLF = false
	}
	line, err := c.readLine()
	if err != nil {
		return h1wire.Unexpected(err)
	}
	size, ok := h1wire.ParseChunkSize(line)
	if !ok {
		return &ProtocolError{Msg: "malformed chunked encoding: chunk size"}
	}
	if size > 0 {
		b.inData, b.left = true, size
		return nil
	}
	// The last chunk: trailers, then the empty line.
	if end, err := c.br.Peek(2); err == nil && string(end) == "\r\n" {
		c.br.Discard(2)
		b.done = true
		return nil
	}
	tr := http.Header{}
	if err := c.readFields(tr, false); err != nil {
		return h1wire.Unexpected(err)
	}
	res := &c.res
	if res.Trailer == nil {
		res.Trailer = tr
	} else {
		for k, vs := range tr {
			res.Trailer[k] = vs
		}
	}
	b.done = true
	return nil
}

// Close ends the exchange: the connection is reused when the body was read
// to its end. Only the first Close counts.
func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.c.finish(b.done && b.err == nil)
	return nil
}

// upgradedConn is the body of a 101 response: the connection itself, read
// through its buffer first.
type upgradedConn struct{ c *h1Conn }

func (u *upgradedConn) Read(p []byte) (int, error) {
	if u.c.br.Buffered() > 0 {
		return u.c.br.Read(p)
	}
	return u.c.nc.Read(p)
}

func (u *upgradedConn) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u *upgradedConn) Close() error                { return u.c.nc.Close() }

// CloseWrite half-closes the upstream connection.
func (u *upgradedConn) CloseWrite() error {
	if cw, ok := u.c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.c.nc.Close()
}

func isConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// validRequest checks what the request line and headers carry, as
// net/http's Transport does before writing.
func validRequest(req *HTTP1Request) error {
	if req.Method == "" || !h1wire.ValidToken(req.Method) {
		return &ProtocolError{Msg: "invalid method " + strconv.Quote(req.Method)}
	}
	if !h1wire.ValidTarget(req.Path) || !h1wire.ValidTarget(req.Query) {
		return &ProtocolError{Msg: "invalid request target"}
	}
	if !validHost(req.Host) {
		return &ProtocolError{Msg: "invalid Host header " + strconv.Quote(req.Host)}
	}
	for k, vs := range req.Header {
		if !h1wire.ValidToken(k) {
			return &ProtocolError{Msg: "invalid header field name " + strconv.Quote(k)}
		}
		for _, v := range vs {
			if !h1wire.ValidFieldValue(v) {
				return &ProtocolError{Msg: "invalid header field value for " + strconv.Quote(k)}
			}
		}
	}
	return nil
}

// h1Transport is an HTTP/1.1 host's pool as an http.RoundTripper (for
// callers holding an *http.Request; the proxy calls SendHTTP1). The
// response is a copy, valid after Body.Close but for its Body.
type h1Transport struct{ h *Host }

func (t h1Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	req := &HTTP1Request{Method: r.Method, Host: r.Host, Header: r.Header, Trailer: r.Trailer}
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Host == "" {
		req.Host = r.URL.Host
	}
	req.Path, req.Query, _ = strings.Cut(r.URL.RequestURI(), "?")
	if r.Body != nil && r.Body != http.NoBody {
		req.Body, req.ContentLength = r.Body, r.ContentLength
		if req.ContentLength == 0 {
			req.ContentLength = -1
		}
	}
	res, err := t.h.SendHTTP1(r.Context(), req)
	if err != nil {
		return nil, err
	}
	out := *res
	out.Header = res.Header.Clone()
	out.Request = r
	out.Status = strconv.Itoa(res.StatusCode) + " " + http.StatusText(res.StatusCode)
	return &out, nil
}
