package h1server

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// wbufMax is how much response the connection gathers before writing;
// a larger body write goes to the connection directly.
const wbufMax = 16 << 10

// pendMax is how much body is held back, when the handler gave no
// Content-Length, in the hope that the handler returns first and the
// length can be sent (net/http: bufferBeforeChunkingSize).
const pendMax = 2 << 10

// response is the connection's http.ResponseWriter, reset per request.
// The head is written into the connection's buffer at WriteHeader (the
// header values may be the upstream connection's, reused once the
// handler goes on); the framing fields (Content-Length or chunked,
// Connection, Date) and the blank line are added when the framing is
// known: at once when the handler gave a Content-Length or no body is
// allowed, else at the first flush or when the handler returns.
type response struct {
	c   *conn
	req *http.Request
	hdr http.Header

	status      int
	wroteHeader bool
	framed      bool
	bodyAllowed bool
	isHEAD      bool
	chunked     bool
	closeAfter  bool
	keepAlive10 bool // an HTTP/1.0 client asked for keep-alive
	hasDate     bool
	teIdentity  bool
	hasTE       bool
	cl          int64 // the handler's Content-Length, -1 when none
	written     int64
	conn        []string // the handler's Connection header
	trailers    []string // declared trailer keys
	err         error
}

func (w *response) reset(r *http.Request) {
	clear(w.hdr)
	*w = response{c: w.c, req: r, hdr: w.hdr, cl: -1, trailers: w.trailers[:0]}
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.hdr }

// WriteHeader implements http.ResponseWriter.
func (w *response) WriteHeader(code int) {
	if w.c.hijacked || w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("h1server: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.wroteHeader = true
	w.status = code
	w.isHEAD = w.req.Method == http.MethodHead
	w.bodyAllowed = code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
	c := w.c
	b := c.wbuf[:0]
	b = w.appendStatusLine(b, code)
	for k, vs := range w.hdr {
		switch k {
		case "Content-Length":
			if w.bodyAllowed && len(vs) > 0 {
				if n, ok := parseContentLength(vs[:1]); ok {
					w.cl = n
				}
			}
			continue
		case "Transfer-Encoding":
			w.hasTE = true
			w.teIdentity = len(vs) > 0 && vs[0] == "identity"
			continue
		case "Connection":
			w.conn = vs
			if headerHasToken(vs, "close") {
				w.closeAfter = true
			}
			continue
		case "Date":
			w.hasDate = true
		case "Trailer":
			for _, v := range vs {
				for _, t := range strings.Split(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						w.trailers = append(w.trailers, http.CanonicalHeaderKey(t))
					}
				}
			}
		case "Content-Type":
			if code == http.StatusNotModified {
				continue
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !h1wire.ValidToken(k) {
			continue
		}
		for _, v := range vs {
			b = appendField(b, k, v)
		}
	}
	c.wbuf = b
	// Declared trailers present now went out as headers: only values set
	// from now on are trailers.
	for _, k := range w.trailers {
		delete(w.hdr, k)
	}
	if w.hasTE && w.cl >= 0 && !w.teIdentity {
		w.cl = -1 // net/http: Transfer-Encoding wins over Content-Length
	}
	r := w.req
	if r.ProtoMinor == 0 {
		w.keepAlive10 = !r.Close
	} else if r.Close {
		w.closeAfter = true
	}
	if c.s.closing.Load() {
		w.closeAfter = true // draining: tell the client
	}
	if !w.bodyAllowed || w.isHEAD || w.cl >= 0 {
		w.frame(false)
	}
}

// writeInformational sends a 1xx response with the current header at
// once (103 Early Hints and the like; 100 Continue is sent by the body).
func (w *response) writeInformational(code int) {
	if w.req.ProtoMinor == 0 {
		return // HTTP/1.0 has no 1xx
	}
	c := w.c
	b := w.appendStatusLine(c.wbuf[:0], code)
	for k, vs := range w.hdr {
		if h1wire.ValidToken(k) && !strings.HasPrefix(k, http.TrailerPrefix) {
			for _, v := range vs {
				b = appendField(b, k, v)
			}
		}
	}
	c.wbuf = append(b, "\r\n"...)
	w.flushWire()
}

func (w *response) appendStatusLine(b []byte, code int) []byte {
	if w.req.ProtoMinor == 0 {
		b = append(b, "HTTP/1.0 "...)
	} else {
		b = append(b, "HTTP/1.1 "...)
	}
	return appendStatus(b, code)
}

// frame ends the head with the framing fields; final says the handler
// returned (the held-back body is then the whole body).
func (w *response) frame(final bool) {
	if w.framed {
		return
	}
	w.framed = true
	c := w.c
	b := c.wbuf
	minor := w.req.ProtoMinor
	knownLength := true
	switch {
	case !w.bodyAllowed:
	case w.cl >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.cl, 10)
		b = append(b, "\r\n"...)
	case w.isHEAD:
	case final && len(w.trailers) == 0 && !w.hasTE:
		w.cl = int64(len(c.pend))
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.cl, 10)
		b = append(b, "\r\n"...)
	case minor >= 1 && !w.teIdentity:
		w.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	default:
		knownLength = false
		w.closeAfter = true // ended by closing the connection
	}
	if minor == 0 {
		if w.keepAlive10 && knownLength && !w.closeAfter {
			b = append(b, "Connection: keep-alive\r\n"...)
		} else {
			w.closeAfter = true
		}
	} else if w.closeAfter && w.status != http.StatusSwitchingProtocols {
		b = append(b, "Connection: close\r\n"...)
	} else {
		for _, v := range w.conn {
			b = appendField(b, "Connection", v)
		}
	}
	if !w.hasDate {
		b = append(b, "Date: "...)
		b = appendDate(b)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	c.wbuf = b
	if len(c.pend) > 0 {
		p := c.pend
		c.pend = c.pend[:0]
		w.writeBody(p)
	}
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHEAD || len(p) == 0 {
		return len(p), nil
	}
	c := w.c
	if !w.framed {
		if len(c.pend)+len(p) <= pendMax {
			c.pend = append(c.pend, p...)
			return len(p), nil
		}
		w.frame(false)
	}
	return w.writeBody(p)
}

// WriteString is Write without a conversion (io.StringWriter).
func (w *response) WriteString(s string) (int, error) {
	if w.framed && !w.chunked && w.err == nil && !w.isHEAD && w.bodyAllowed &&
		len(w.c.wbuf)+len(s) <= wbufMax && (w.cl < 0 || w.written+int64(len(s)) <= w.cl) {
		w.c.wbuf = append(w.c.wbuf, s...)
		w.written += int64(len(s))
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody adds p to the response body (framed), writing out what does
// not fit.
func (w *response) writeBody(p []byte) (int, error) {
	c := w.c
	if w.chunked {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(p)), 16)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if len(c.wbuf)+len(p) <= wbufMax {
		c.wbuf = append(c.wbuf, p...)
	} else {
		if err := w.flushWire(); err != nil {
			return 0, err
		}
		if len(p) <= wbufMax {
			c.wbuf = append(c.wbuf, p...)
		} else if err := w.writeWire(p); err != nil {
			return 0, err
		}
	}
	if w.chunked {
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	return len(p), nil
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// FlushError writes out what the response holds (http.ResponseController).
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.frame(false)
	return w.flushWire()
}

// finish completes the response when the handler returned: framing, the
// last chunk and trailers, and one write of what is left.
func (w *response) finish() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.frame(true)
	c := w.c
	if w.chunked {
		c.wbuf = append(c.wbuf, "0\r\n"...)
		for k, vs := range w.hdr {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok {
				if !w.declared(k) {
					continue
				}
				name = k
			}
			if !h1wire.ValidToken(name) {
				continue
			}
			for _, v := range vs {
				c.wbuf = appendField(c.wbuf, name, v)
			}
		}
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if w.bodyAllowed && !w.isHEAD && w.cl >= 0 && w.written != w.cl {
		w.closeAfter = true // short: the client would wait for the rest
	}
	w.flushWire()
}

func (w *response) declared(k string) bool {
	for _, t := range w.trailers {
		if t == k {
			return true
		}
	}
	return false
}

// flushWire writes the connection's buffer.
func (w *response) flushWire() error {
	c := w.c
	if len(c.wbuf) == 0 || w.err != nil {
		return w.err
	}
	err := w.writeWire(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

func (w *response) writeWire(p []byte) error {
	c := w.c
	if c.expectPending.Load() {
		c.contMu.Lock()
		c.expectPending.Store(false) // no 100 Continue after the response started
		c.contMu.Unlock()
	}
	if _, err := c.nc.Write(p); err != nil {
		w.err = err
		c.readFailed() // the client is gone: cancel the request
		return err
	}
	return nil
}

// writeContinue sends 100 Continue unless the response started.
func (c *conn) writeContinue() error {
	c.contMu.Lock()
	defer c.contMu.Unlock()
	if !c.expectPending.Load() {
		return nil
	}
	c.expectPending.Store(false)
	_, err := c.nc.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	return err
}

// Hijack implements http.Hijacker: the connection is the caller's from
// now on (the Server no longer tracks it).
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader {
		w.frame(false)
		if err := w.flushWire(); err != nil {
			return nil, nil, err
		}
	}
	c.stopWatch()
	c.hijacked = true
	c.nc.SetDeadline(time.Time{})
	rw := bufio.NewReadWriter(c.br, bufio.NewWriter(c.nc))
	c.s.forget(c, http.StateHijacked)
	return c.nc, rw, nil
}

// SetReadDeadline is http.ResponseController's.
func (w *response) SetReadDeadline(t time.Time) error {
	w.c.readDeadline.Store(true)
	return w.c.nc.SetReadDeadline(t)
}

// SetWriteDeadline is http.ResponseController's.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.writeDeadline.Store(true)
	return w.c.nc.SetWriteDeadline(t)
}

// appendField appends "k: v\r\n", v trimmed and with CR and LF turned into
// spaces as net/http does (no response splitting).
func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	v = strings.Trim(v, " \t")
	if strings.IndexByte(v, '\n') < 0 && strings.IndexByte(v, '\r') < 0 {
		b = append(b, v...)
	} else {
		for i := 0; i < len(v); i++ {
			ch := v[i]
			if ch == '\r' || ch == '\n' {
				ch = ' '
			}
			b = append(b, ch)
		}
	}
	return append(b, "\r\n"...)
}

// appendStatus appends "200 OK\r\n".
func appendStatus(b []byte, code int) []byte {
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if t := http.StatusText(code); t != "" {
		b = append(b, t...)
	} else {
		b = append(b, "status code "...)
		b = strconv.AppendInt(b, int64(code), 10)
	}
	return append(b, "\r\n"...)
}

func appendInt(b []byte, n int64) []byte { return strconv.AppendInt(b, n, 10) }

// The Date header, formatted once a second.
type dateValue struct {
	sec int64
	b   []byte
}

var dateCache atomic.Pointer[dateValue]

func appendDate(b []byte) []byte {
	now := time.Now()
	d := dateCache.Load()
	if d == nil || d.sec != now.Unix() {
		d = &dateValue{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.b...)
}
