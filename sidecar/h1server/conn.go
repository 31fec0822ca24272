package h1server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// Connection states, for Shutdown: an idle connection (waiting for a
// request) is closed by Shutdown; a busy one closes after its response.
const (
	stateIdle int32 = iota
	stateActive
	stateClosing
)

// aLongTimeAgo is a deadline in the past: it ends a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection and everything its requests reuse.
type conn struct {
	s     *Server
	nc    net.Conn
	cr    connReader
	br    *bufio.Reader
	state atomic.Int32

	// The request being served and its parts, reused.
	req    *http.Request
	rctx   *reqCtx
	url    urlParts
	hdr    http.Header
	body   *body // nil without a body
	rw     response
	remote string

	// Parsing scratch: the head's bytes, field spans, value array.
	head  []byte
	long  []byte
	spans []h1wire.Span
	vals  []string
	canon []byte

	// Response buffers: wbuf is what goes to the wire next, pend the body
	// written before the framing was known.
	wbuf []byte
	pend []byte

	// The watch (background 1-byte read) and its state, under wmu.
	wmu       sync.Mutex
	wcond     sync.Cond
	watchWant bool // the request's context was asked for Done
	bodyDone  bool // the request body was read to its end (or none)
	watching  bool // the watch goroutine runs
	stopped   bool // the request is over: no watch may start
	hasByte   bool // the watch read a byte of the next request
	bgByte    [1]byte

	// expectPending: 100 Continue may still be sent (under contMu).
	expectPending atomic.Bool
	contMu        sync.Mutex

	// rdl is the read deadline last set by the connection's goroutine;
	// rdlDirty says somebody else may have changed it since.
	rdl      time.Time
	rdlDirty bool
	// The handler set a read or write deadline (http.ResponseController;
	// from any goroutine).
	readDeadline, writeDeadline atomic.Bool

	broken     bool // a read or write failed: no further request
	hijacked   bool
	forgotten  bool
	hadRequest bool
}

// connReader reads the connection, first returning a byte the watch read.
type connReader struct{ c *conn }

func (r *connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.hasByte && len(p) > 0 {
		c.hasByte = false
		p[0] = c.bgByte[0]
		return 1, nil
	}
	return c.nc.Read(p)
}

// serve is the connection's goroutine.
func (c *conn) serve() {
	c.wcond.L = &c.wmu
	c.remote = c.nc.RemoteAddr().String()
	c.rctx = &reqCtx{c: c}
	c.req = (&http.Request{}).WithContext(c.rctx)
	c.hdr = make(http.Header, 16)
	c.rw.c = c
	c.rw.hdr = make(http.Header, 16)
	defer func() {
		if c.forgotten {
			return // H2C's now
		}
		c.rctx.cancel() // the handler returned (net/http cancels too)
		if c.hijacked {
			return
		}
		c.nc.Close()
		c.s.forget(c, http.StateClosed)
	}()
	for {
		if !c.awaitRequest() {
			return
		}
		if c.isPreface() {
			c.handToH2C()
			return
		}
		// The header timeout runs from a request's first byte; a head
		// that is all here already needs none.
		hdrDeadline := false
		if d := c.s.ReadHeaderTimeout; d > 0 && !c.headBuffered() {
			c.setReadDeadline(time.Now().Add(d))
			hdrDeadline = true
		}
		if err := c.readRequest(); err != nil {
			c.replyError(err)
			return
		}
		// Body reads have no deadline (the handler's timeouts apply).
		// Without a body the idle deadline may stay: only the watch
		// reads, and a deadline ends it quietly.
		if hdrDeadline || c.body != nil && !c.rdl.IsZero() {
			c.setReadDeadline(time.Time{})
		}
		c.hadRequest = true
		if !c.serveRequest() {
			return
		}
	}
}

// awaitRequest waits for the first byte of the next request (within the
// idle timeout) and marks the connection busy. false: close it.
func (c *conn) awaitRequest() bool {
	if c.readDeadline.Swap(false) {
		c.rdlDirty = true // the handler set one
	}
	if c.writeDeadline.Swap(false) {
		c.nc.SetWriteDeadline(time.Time{})
	}
	// The idle deadline moves by 1/64 of the timeout (a second at most)
	// or more: most requests set none (a deadline change costs a runtime
	// timer update). It also bounds the rest of a pipelined head when
	// there is no header timeout.
	if d := c.s.IdleTimeout; d > 0 {
		if want := time.Now().Add(d); c.rdlDirty || c.rdl.IsZero() || want.Sub(c.rdl) > min(d/64, time.Second) {
			c.setReadDeadline(want)
		}
	} else if c.rdlDirty || !c.rdl.IsZero() {
		c.setReadDeadline(time.Time{})
	}
	if c.br.Buffered() > 0 || c.hasByte {
		// Pipelined: the next request is here.
		return c.state.Load() == stateActive
	}
	if !c.state.CompareAndSwap(stateActive, stateIdle) && c.state.Load() != stateIdle {
		return false // Shutdown closed us
	}
	if c.s.closing.Load() {
		return false
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	return c.state.CompareAndSwap(stateIdle, stateActive)
}

// setReadDeadline sets the connection's read deadline and remembers it.
func (c *conn) setReadDeadline(t time.Time) {
	c.nc.SetReadDeadline(t)
	c.rdl, c.rdlDirty = t, false
}

// headBuffered reports whether a whole request head is buffered: it starts
// with a request line (not the empty lines that may precede one) and its
// end is here.
func (c *conn) headBuffered() bool {
	b, _ := c.br.Peek(c.br.Buffered())
	if len(b) == 0 || b[0] == '\r' || b[0] == '\n' {
		return false
	}
	return bytes.Index(b, []byte("\n\r\n")) >= 0 || bytes.Index(b, []byte("\n\n")) >= 0
}

const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// isPreface reports whether the connection opens with the HTTP/2
// preface. It waits for more bytes only while those that arrived match.
func (c *conn) isPreface() bool {
	if c.hadRequest || c.s.H2C == nil {
		return false
	}
	n := 1
	for {
		n = min(max(n, c.br.Buffered()), len(preface))
		b, err := c.br.Peek(n)
		if string(b) != preface[:len(b)] || err != nil {
			return false
		}
		if n == len(preface) {
			return true
		}
		n++ // all of it matches so far: one byte more
	}
}

// handToH2C gives the connection, with the bytes read so far, to H2C.
func (c *conn) handToH2C() {
	c.nc.SetReadDeadline(time.Time{})
	buffered, _ := c.br.Peek(c.br.Buffered())
	s := c.s
	rc := &replayConn{Conn: c.nc, pending: append([]byte(nil), buffered...)}
	rc.onClose = func() {
		if s.ConnState != nil {
			s.ConnState(c.nc, http.StateClosed)
		}
	}
	// Out of the tracked set (H2C drains it) without reporting a state:
	// the replayConn reports StateClosed.
	c.forgotten = true
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
	if !s.h2ln.hand(rc) {
		rc.Close()
	}
}

// serveRequest runs the handler on the request read and finishes its
// response. false: close the connection.
func (c *conn) serveRequest() (keep bool) {
	w := &c.rw
	aborted := c.runHandler(w)
	c.stopWatch()
	if c.hijacked {
		return false
	}
	if aborted {
		return false
	}
	w.finish()
	keep = !w.closeAfter && !c.s.closing.Load()
	if c.body != nil && !c.body.finishUnread() {
		keep = false
	}
	if c.broken {
		keep = false
	}
	c.endRequest()
	return keep
}

// runHandler calls the handler; true when it panicked (the connection is
// cut: with http.ErrAbortHandler silently, else the panic is logged).
func (c *conn) runHandler(w *response) (aborted bool) {
	defer func() {
		if p := recover(); p != nil {
			aborted = true
			if p != http.ErrAbortHandler {
				c.s.logf("h1server: panic serving %s: %v\n%s", c.remote, p, debug.Stack())
			}
		}
	}()
	c.s.Handler.ServeHTTP(w, c.req)
	return false
}

// endRequest retires the request's context if it was watched (a fresh
// one for the next request) and cancels it, as net/http does when a
// handler returns.
func (c *conn) endRequest() {
	x := c.rctx
	x.mu.Lock()
	exposed := x.inner != nil
	x.mu.Unlock()
	if exposed {
		x.cancel()
		c.rctx = &reqCtx{c: c}
		c.req = c.req.WithContext(c.rctx)
	}
	c.wmu.Lock()
	c.watchWant, c.bodyDone, c.stopped = false, false, false
	c.wmu.Unlock()
}

// replyError answers a request that could not be read and closes: 431
// for an oversized head, the error's status otherwise; nothing when the
// connection failed.
func (c *conn) replyError(err error) {
	var se *statusError
	if !errors.As(err, &se) {
		return // read error or timeout: nobody to answer
	}
	c.nc.SetReadDeadline(time.Time{})
	c.wbuf = append(c.wbuf[:0], "HTTP/1.1 "...)
	c.wbuf = appendStatus(c.wbuf, se.code)
	c.wbuf = append(c.wbuf, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	msg := statusText(se.code)
	c.wbuf = appendInt(c.wbuf, int64(len(msg)))
	c.wbuf = append(c.wbuf, "\r\n\r\n"...)
	c.wbuf = append(c.wbuf, msg...)
	if _, err := c.nc.Write(c.wbuf); err != nil {
		return
	}
	c.closeWriteAndDrain()
}

// closeWriteAndDrain half-closes and reads what the client still sends
// for a moment, so that closing does not reset the connection (and lose
// the reply) while the client is writing.
func (c *conn) closeWriteAndDrain() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c.nc, 256<<10))
}

// The watch: a client going away is noticed by a 1-byte read, started
// when the request's context is asked for Done and its body is all read
// (bytes before the end are the body's).

// wantWatch is called when the request's context's Done is asked for.
func (c *conn) wantWatch() {
	c.wmu.Lock()
	c.watchWant = true
	c.maybeWatchLocked()
	c.wmu.Unlock()
}

// bodyEnded is called when the request body was read to its end.
func (c *conn) bodyEnded() {
	c.wmu.Lock()
	c.bodyDone = true
	c.maybeWatchLocked()
	c.wmu.Unlock()
}

func (c *conn) maybeWatchLocked() {
	if !c.watchWant || !c.bodyDone || c.watching || c.stopped || c.broken || c.hasByte || c.br.Buffered() > 0 {
		return
	}
	c.watching = true
	go c.watch()
}

func (c *conn) watch() {
	n, err := c.nc.Read(c.bgByte[:])
	gone := n == 0 && err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	if gone {
		c.rctx.cancel() // before wmu: Done takes the context's lock, then wmu
	}
	c.wmu.Lock()
	if n == 1 {
		c.hasByte = true
	}
	if gone {
		c.broken = true
	}
	c.watching = false
	c.wcond.Broadcast()
	c.wmu.Unlock()
}

// stopWatch ends a running watch and keeps any from starting until the
// next request.
func (c *conn) stopWatch() {
	c.wmu.Lock()
	c.stopped = true
	if c.watching {
		c.nc.SetReadDeadline(aLongTimeAgo)
		for c.watching {
			c.wcond.Wait()
		}
		c.nc.SetReadDeadline(time.Time{})
		c.rdl, c.rdlDirty = time.Time{}, true
	}
	c.wmu.Unlock()
}

// readFailed is told of a failed read or write on the connection: the
// request's context is canceled (net/http does the same) and the
// connection will not serve another request.
func (c *conn) readFailed() {
	c.wmu.Lock()
	c.broken = true
	c.wmu.Unlock()
	c.rctx.cancel()
}

// reqCtx is a request's context. Done starts the watch; the channel comes
// from a context.WithCancel made on first use, which Value also exposes
// so that derived contexts and context.AfterFunc attach to it without a
// goroutine.
type reqCtx struct {
	c       *conn
	mu      sync.Mutex
	inner   context.Context
	cancelf context.CancelFunc
	err     error // canceled before inner existed
}

func (x *reqCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

func (x *reqCtx) Done() <-chan struct{} {
	x.mu.Lock()
	if x.inner == nil {
		x.inner, x.cancelf = context.WithCancel(context.Background())
		if x.err != nil {
			x.cancelf()
		}
		inner, canceled := x.inner, x.err != nil
		x.mu.Unlock()
		if !canceled {
			x.c.wantWatch()
		}
		return inner.Done()
	}
	inner := x.inner
	x.mu.Unlock()
	return inner.Done()
}

func (x *reqCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.inner != nil {
		return x.inner.Err()
	}
	return x.err
}

func (x *reqCtx) Value(key any) any {
	switch key {
	case http.LocalAddrContextKey:
		return x.c.nc.LocalAddr()
	}
	x.mu.Lock()
	inner := x.inner
	x.mu.Unlock()
	if inner != nil {
		return inner.Value(key)
	}
	return nil
}

func (x *reqCtx) cancel() {
	x.mu.Lock()
	if x.err == nil {
		x.err = context.Canceled
	}
	cancel := x.cancelf
	x.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}
