package cluster

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// scripted is an upstream speaking raw HTTP/1.1: for every request read
// on a connection it writes what answer returns, and closes the connection
// when answer says so. It counts connections and records requests.
type scripted struct {
	addr     string
	accepted atomic.Int32
	mu       sync.Mutex
	reqs     []*http.Request
	bodies   []string
}

func newScripted(t *testing.T, answer func(n int, r *http.Request, body string) (raw string, closeAfter bool)) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scripted{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			conns.Store(c, true)
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					b, _ := io.ReadAll(r.Body)
					s.mu.Lock()
					s.reqs = append(s.reqs, r)
					s.bodies = append(s.bodies, string(b))
					n := len(s.reqs)
					s.mu.Unlock()
					raw, closeAfter := answer(n, r, string(b))
					io.WriteString(c, raw)
					if closeAfter {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	return s
}

func (s *scripted) request(i int) (*http.Request, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs[i], s.bodies[i]
}

func h1Host(t *testing.T, addr string) *Host {
	t.Helper()
	c := build(t, &config.Cluster{Name: "c", Protocol: config.HTTP1, ConnectTimeout: time.Second, Endpoints: []config.Endpoint{{Address: addr, Weight: 1}}})
	return c.Pick(0, false)
}

func send(t *testing.T, h *Host, req *HTTP1Request) (*http.Response, string, error) {
	t.Helper()
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Host == "" {
		req.Host = "svc"
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := h.SendHTTP1(ctx, req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res, string(b), err
}

func TestHTTP1ResponseFraming(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		raw     string
		code    int
		body    string
		header  map[string]string // "" value: must be absent
		trailer map[string]string
		reused  bool
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello",
			code: 200, body: "hello", header: map[string]string{"X-A": "1", "Content-Length": "5"}, reused: true},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n",
			code: 200, body: "hello world", reused: true},
		{name: "chunked with trailers", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 42\r\n\r\n",
			code: 200, body: "abc", trailer: map[string]string{"X-Sum": "42"}, reused: true},
		{name: "chunked wins over content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
			code: 200, body: "ok", header: map[string]string{"Content-Length": ""}, reused: true},
		{name: "until close", raw: "HTTP/1.1 200 OK\r\n\r\nstreamed to the end",
			code: 200, body: "streamed to the end", reused: false},
		{name: "connection close", raw: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			code: 200, body: "ok", reused: false},
		{name: "HTTP/1.0 without keep-alive", raw: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			code: 200, body: "ok", reused: false},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			code: 200, body: "ok", reused: true},
		{name: "HEAD", method: "HEAD", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
			code: 200, body: "", header: map[string]string{"Content-Length": "5"}, reused: true},
		{name: "204", raw: "HTTP/1.1 204 No Content\r\n\r\n", code: 204, reused: true},
		{name: "304", raw: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", code: 304, reused: true},
		{name: "1xx skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			code: 200, body: "ok", header: map[string]string{"Link": ""}, reused: true},
		{name: "repeated fields", raw: "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n",
			code: 200, header: map[string]string{"Set-Cookie": "a=1,b=2"}, reused: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := newScripted(t, func(int, *http.Request, string) (string, bool) {
				return tc.raw, !tc.reused
			})
			h := h1Host(t, up.addr)
			for i := range 2 {
				res, body, err := send(t, h, &HTTP1Request{Method: tc.method, Path: "/x"})
				if err != nil {
					t.Fatalf("request %d: %v", i, err)
				}
				if res.StatusCode != tc.code || body != tc.body {
					t.Errorf("request %d: %d %q, want %d %q", i, res.StatusCode, body, tc.code, tc.body)
				}
				for k, v := range tc.header {
					if got := strings.Join(res.Header[k], ","); got != v {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				for k, v := range tc.trailer {
					if got := res.Trailer.Get(k); got != v {
						t.Errorf("trailer %s = %q, want %q", k, got, v)
					}
				}
			}
			want := int32(2)
			if tc.reused {
				want = 1
			}
			if got := up.accepted.Load(); got != want {
				t.Errorf("%d connections for 2 requests, want %d", got, want)
			}
		})
	}
}

func TestHTTP1MalformedResponses(t *testing.T) {
	for _, raw := range []string{
		"HTTP/1.1 abc nonsense\r\n\r\n",
		"SPDY/3 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\n\r\n",
		"HTTP/1.1 200 OK\r\nBad Name: 1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
	} {
		t.Run(strings.Fields(raw)[0]+" "+strings.ReplaceAll(raw[min(len(raw), 17):], "\r\n", "|"), func(t *testing.T) {
			up := newScripted(t, func(int, *http.Request, string) (string, bool) { return raw, true })
			h := h1Host(t, up.addr)
			_, _, err := send(t, h, &HTTP1Request{Path: "/"})
			if !IsProtocolError(err) {
				t.Errorf("err = %v, want a protocol error", err)
			}
		})
	}
	t.Run("bad chunk", func(t *testing.T) {
		up := newScripted(t, func(int, *http.Request, string) (string, bool) {
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true
		})
		_, _, err := send(t, h1Host(t, up.addr), &HTTP1Request{Path: "/"})
		if !IsProtocolError(err) {
			t.Errorf("body err = %v, want a protocol error", err)
		}
	})
	t.Run("truncated body", func(t *testing.T) {
		up := newScripted(t, func(int, *http.Request, string) (string, bool) {
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true
		})
		_, _, err := send(t, h1Host(t, up.addr), &HTTP1Request{Path: "/"})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("body err = %v, want unexpected EOF", err)
		}
	})
	t.Run("closed before the response", func(t *testing.T) {
		up := newScripted(t, func(int, *http.Request, string) (string, bool) { return "", true })
		_, _, err := send(t, h1Host(t, up.addr), &HTTP1Request{Path: "/"})
		if !errors.Is(err, errClosedBeforeResponse) {
			t.Errorf("err = %v, want closed before the response", err)
		}
	})
}

func TestHTTP1RequestWriting(t *testing.T) {
	up := newScripted(t, func(int, *http.Request, string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false
	})
	h := h1Host(t, up.addr)
	hdr := http.Header{"X-A": {"1", "2"}, "Te": {"trailers"}}
	steps := []struct {
		req   HTTP1Request
		check func(t *testing.T, r *http.Request, body string)
	}{
		{HTTP1Request{Method: "GET", Path: "/p%2Fq", Query: "a=1&b", Host: "api.local", Header: hdr}, func(t *testing.T, r *http.Request, body string) {
			if r.RequestURI != "/p%2Fq?a=1&b" || r.Host != "api.local" || r.ContentLength != 0 || r.Header["Content-Length"] != nil {
				t.Errorf("GET: %s %s host %s cl %d %v", r.Method, r.RequestURI, r.Host, r.ContentLength, r.Header)
			}
			if got := r.Header["X-A"]; len(got) != 2 || got[0] != "1" || got[1] != "2" {
				t.Errorf("X-A = %q", got)
			}
			if r.Header.Get("User-Agent") != "" {
				t.Errorf("User-Agent %q added", r.Header.Get("User-Agent"))
			}
		}},
		{HTTP1Request{Method: "POST", Path: "/empty"}, func(t *testing.T, r *http.Request, body string) {
			if r.Header.Get("Content-Length") != "0" {
				t.Errorf("empty POST: Content-Length %q, want 0", r.Header.Get("Content-Length"))
			}
		}},
		{HTTP1Request{Method: "PUT", Path: "/mem", BodyBytes: []byte("in memory"), ContentLength: -1}, func(t *testing.T, r *http.Request, body string) {
			if body != "in memory" || r.ContentLength != 9 {
				t.Errorf("in-memory body %q, length %d", body, r.ContentLength)
			}
		}},
		{HTTP1Request{Method: "POST", Path: "/stream", Body: io.NopCloser(strings.NewReader("streamed")), ContentLength: 8}, func(t *testing.T, r *http.Request, body string) {
			if body != "streamed" || r.ContentLength != 8 {
				t.Errorf("streamed body %q, length %d", body, r.ContentLength)
			}
		}},
		{HTTP1Request{Method: "POST", Path: "/chunked", Body: io.NopCloser(strings.NewReader("of unknown length")), ContentLength: -1,
			Trailer: http.Header{"X-Check": {"ok"}}}, func(t *testing.T, r *http.Request, body string) {
			if body != "of unknown length" || len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
				t.Errorf("chunked body %q, transfer encoding %v", body, r.TransferEncoding)
			}
			if r.Trailer.Get("X-Check") != "ok" {
				t.Errorf("request trailer %v", r.Trailer)
			}
		}},
		{HTTP1Request{Method: "POST", Path: "/big", Body: io.NopCloser(strings.NewReader(strings.Repeat("b", 100<<10))), ContentLength: 100 << 10}, func(t *testing.T, r *http.Request, body string) {
			if len(body) != 100<<10 {
				t.Errorf("large body: %d bytes", len(body))
			}
		}},
	}
	for i, st := range steps {
		if _, _, err := send(t, h, &st.req); err != nil {
			t.Fatalf("%s: %v", st.req.Path, err)
		}
		r, body := up.request(i)
		st.check(t, r, body)
	}
	if n := up.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (all reused)", n)
	}
	for _, bad := range []HTTP1Request{
		{Method: "GET", Path: "/a b", Host: "svc"},
		{Method: "GET", Path: "/", Host: "svc\r\nX: 1"},
		{Method: "GET", Path: "/", Host: "svc", Header: http.Header{"X": {"a\r\nInjected: 1"}}},
		{Method: "GET", Path: "/", Host: "svc", Header: http.Header{"Bad Name": {"1"}}},
		{Method: "G T", Path: "/", Host: "svc"},
	} {
		if _, _, err := send(t, h, &bad); !IsProtocolError(err) {
			t.Errorf("%+v: err = %v, want a protocol error", bad, err)
		}
	}
}

// TestHTTP1Reuse: a connection is reused only once its response body was
// read to the end.
func TestHTTP1Reuse(t *testing.T) {
	up := newScripted(t, func(int, *http.Request, string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", false
	})
	h := h1Host(t, up.addr)
	ctx := t.Context()
	res, err := h.SendHTTP1(ctx, &HTTP1Request{Method: "GET", Path: "/", Host: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatal(err)
	}
	res.Body.Close() // 6 bytes unread
	if _, body, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil || body != "0123456789" {
		t.Fatalf("after a partly read body: %q, %v", body, err)
	}
	if _, _, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil {
		t.Fatal(err)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the partly read one closed, the next reused)", n)
	}
	// Idle longer than checkIdleAfter: peeked at, found alive, reused.
	time.Sleep(checkIdleAfter + 100*time.Millisecond)
	if _, body, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil || body != "0123456789" {
		t.Fatalf("after idling: %q, %v", body, err)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (an idle live connection reused)", n)
	}
	waitFor(ctx, t, "one open connection", func() bool { return h.connections.Load() == 1 })
}

// TestHTTP1StaleConnection: an upstream that closes an idle connection
// without saying so; the next idempotent request is sent again on a new
// connection instead of failing.
func TestHTTP1StaleConnection(t *testing.T) {
	up := newScripted(t, func(int, *http.Request, string) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	h := h1Host(t, up.addr)
	for i := range 3 {
		if _, body, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		time.Sleep(20 * time.Millisecond) // the close reaches the pool's socket
	}
	// Idle longer than checkIdleAfter: found closed before it is used.
	time.Sleep(checkIdleAfter + 100*time.Millisecond)
	if _, body, err := send(t, h, &HTTP1Request{Method: "POST", Path: "/", Body: io.NopCloser(strings.NewReader("x")), ContentLength: 1}); err != nil || body != "ok" {
		t.Fatalf("POST on a connection idle for %v: %q, %v", checkIdleAfter, body, err)
	}
}

// TestHTTP1EarlyResponse: the upstream answers before reading a large
// body; the response is delivered, and the connection (whose request was
// not all written) is not reused.
func TestHTTP1EarlyResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n")
		time.Sleep(200 * time.Millisecond)
	}()
	h := h1Host(t, ln.Addr().String())
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 64<<10)
		for range 64 { // 4 MiB: more than the socket buffers hold
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	res, _, err := send(t, h, &HTTP1Request{Method: "POST", Path: "/", Body: pr, ContentLength: 4 << 20})
	if err != nil || res.StatusCode != 413 {
		t.Fatalf("early response: %v, %v", res, err)
	}
	pr.CloseWithError(errors.New("done"))
	<-done
	waitFor(t.Context(), t, "connection closed", func() bool { return h.connections.Load() == 0 })
}

// TestHTTP1ContextEnds: ctx ending aborts a request waiting for its
// response at once, and its connection is closed.
func TestHTTP1ContextEnds(t *testing.T) {
	release := make(chan struct{})
	up := newScripted(t, func(int, *http.Request, string) (string, bool) {
		<-release
		return "", true
	})
	defer close(release)
	h := h1Host(t, up.addr)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := h.SendHTTP1(ctx, &HTTP1Request{Method: "GET", Path: "/", Host: "svc"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if n := h.connections.Load(); n != 0 {
		t.Errorf("%d connections open after the abort", n)
	}
}

// TestHTTP1IdleHoldsNoBuffers: an idle pooled connection gives its read
// and write buffers back (issue 8: thousands of clusters, one idle
// connection each) and gets them again when reused; a response with
// bytes after it is not pooled (its reader is kept, the connection
// closed).
func TestHTTP1IdleHoldsNoBuffers(t *testing.T) {
	up := newScripted(t, func(n int, _ *http.Request, _ string) (string, bool) {
		if n == 3 {
			return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n", false
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false
	})
	h := h1Host(t, up.addr)
	idle := func() []*h1Conn {
		p := h.pool()
		p.mu.Lock()
		defer p.mu.Unlock()
		return append([]*h1Conn(nil), p.idle...)
	}
	for i := range 2 {
		if _, body, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		conns := idle()
		if len(conns) != 1 {
			t.Fatalf("after request %d: %d idle connections, want 1", i, len(conns))
		}
		if c := conns[0]; c.br != nil || c.bw != nil {
			t.Errorf("after request %d: the idle connection holds its buffers (reader %p, writer %p)", i, c.br, c.bw)
		}
	}
	if n := up.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1 (reused with buffers taken again)", n)
	}
	// Unsolicited bytes after the third response: not pooled.
	if _, body, err := send(t, h, &HTTP1Request{Path: "/"}); err != nil || body != "ok" {
		t.Fatalf("request 3: %q, %v", body, err)
	}
	if conns := idle(); len(conns) != 0 {
		t.Errorf("%d idle connections after a response followed by stray bytes, want 0", len(conns))
	}
}
