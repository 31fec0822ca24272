package h1server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start serves h on a loopback port with the options set by opts; the
// server is closed when the test ends.
func start(t *testing.T, h http.Handler, opts ...func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: h, MaxHeaderBytes: 60 << 10}
	for _, o := range opts {
		o(s)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// dial opens a raw connection with a deadline for the whole test step.
func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// echo answers "METHOD target body" and reports the request's trailers.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusTeapot)
		return
	}
	for k, vs := range r.Trailer {
		w.Header()["Got-Trailer-"+k] = vs
	}
	w.Header().Set("Proto", r.Proto)
	w.Header().Set("Host-Seen", r.Host)
	fmt.Fprintf(w, "%s %s %s", r.Method, r.RequestURI, b)
})

func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return res, string(b)
}

// expectClosed: the server closed the connection (EOF, or a reset).
func expectClosed(t *testing.T, br *bufio.Reader) {
	t.Helper()
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("connection open: read %q", b)
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestPipelinedKeepAlive(t *testing.T) {
	_, addr := start(t, echo)
	c, br := dial(t, addr)
	// Three requests in one write: a GET, a body by length, a chunked body
	// with a declared trailer.
	io.WriteString(c, "GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"+
		"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"+
		"PUT /c HTTP/1.1\r\nhost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-T: v\r\n\r\n")
	want := []struct{ method, body, trailer string }{
		{"GET", "GET /a?x=1 ", ""},
		{"POST", "POST /b hello", ""},
		{"PUT", "PUT /c abcde", "v"},
	}
	for _, w := range want {
		res, body := readResponse(t, br, w.method)
		if res.StatusCode != 200 || body != w.body || res.Header.Get("Host-Seen") != "h" {
			t.Errorf("%s: %d %q host %q, want 200 %q", w.method, res.StatusCode, body, res.Header.Get("Host-Seen"), w.body)
		}
		if got := res.Header.Get("Got-Trailer-X-T"); got != w.trailer {
			t.Errorf("%s: trailer %q, want %q", w.method, got, w.trailer)
		}
		if res.ContentLength != int64(len(w.body)) || res.Close {
			t.Errorf("%s: length %d close %v, want %d, keep-alive", w.method, res.ContentLength, res.Close, len(w.body))
		}
	}
	// Still open for a fourth.
	io.WriteString(c, "GET /d HTTP/1.1\r\nHost: h\r\n\r\n")
	if _, body := readResponse(t, br, "GET"); body != "GET /d " {
		t.Errorf("fourth: %q", body)
	}
}

func TestConnectionClose(t *testing.T) {
	tests := []struct {
		name, req, proto string
		close            bool
	}{
		{"1.1 close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", "HTTP/1.1", true},
		{"1.0", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.0", true},
		{"1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "HTTP/1.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := start(t, echo)
			c, br := dial(t, addr)
			io.WriteString(c, tt.req)
			res, body := readResponse(t, br, "GET")
			if body != "GET / " || res.Proto != tt.proto || res.Header.Get("Proto") != tt.proto {
				t.Fatalf("%s %q (handler saw %s)", res.Proto, body, res.Header.Get("Proto"))
			}
			if tt.close {
				expectClosed(t, br)
				return
			}
			if res.Header.Get("Connection") != "keep-alive" {
				t.Errorf("Connection = %q, want keep-alive", res.Header.Get("Connection"))
			}
			io.WriteString(c, tt.req)
			if _, body := readResponse(t, br, "GET"); body != "GET / " {
				t.Errorf("second request: %q", body)
			}
		})
	}
}

// TestRefused: malformed or smuggling-prone requests get the status and
// the connection closes; the handler never runs.
func TestRefused(t *testing.T) {
	tests := []struct {
		name, req string
		code      int
	}{
		{"both lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"bad length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3x\r\n\r\nabc", 400},
		{"negative length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -3\r\n\r\nabc", 400},
		{"differing lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
		{"length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\nabcd", 400},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"two codings", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
		{"line folding", "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", 400},
		{"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n\r\n", 400},
		{"no host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"control in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n", 400},
		{"no version", "GET /\r\nHost: h\r\n\r\n", 400},
		{"bad version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400},
		{"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505},
		{"bad escape", "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"trailer declares length", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", 400},
		{"unknown expectation", "GET / HTTP/1.1\r\nHost: h\r\nExpect: magic\r\n\r\n", 417},
		{"headers too large", "GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("a", 70<<10) + "\r\n\r\n", 431},
		{"many fields too large", "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Field: "+strings.Repeat("b", 100)+"\r\n", 700) + "\r\n", 431},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran := make(chan struct{}, 1)
			_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran <- struct{}{} }))
			c, br := dial(t, addr)
			go io.WriteString(c, tt.req) // may not all be read
			res, _ := readResponse(t, br, "GET")
			if res.StatusCode != tt.code || !res.Close {
				t.Errorf("status %d close %v, want %d and close", res.StatusCode, res.Close, tt.code)
			}
			expectClosed(t, br)
			select {
			case <-ran:
				t.Error("the handler ran")
			default:
			}
		})
	}
}

// TestAccepted: edge cases that are valid.
func TestAccepted(t *testing.T) {
	tests := []struct{ name, req, body string }{
		{"lower-case names", "GET /x HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\n\r\nab", "GET /x ab"},
		{"empty lines before", "\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", "GET /x "},
		{"bare LF", "GET /x HTTP/1.1\nHost: h\n\n", "GET /x "},
		{"equal lengths", "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab", "POST /x ab"},
		{"absolute form", "GET http://h/x?q HTTP/1.1\r\nHost: other\r\n\r\n", "GET http://h/x?q "},
		{"escaped path", "GET /a%20b HTTP/1.1\r\nHost: h\r\n\r\n", "GET /a%20b "},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "OPTIONS * "},
		{"HTTP/1.0 without host, TE ignored", "GET /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "GET /x "},
		{"chunk size in upper case", "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n", "POST /x 0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := start(t, echo)
			c, br := dial(t, addr)
			io.WriteString(c, tt.req)
			res, body := readResponse(t, br, "GET")
			if res.StatusCode != 200 || body != tt.body {
				t.Errorf("%d %q, want 200 %q", res.StatusCode, body, tt.body)
			}
		})
	}
}

// TestMalformedChunks: the handler's body read fails; the connection
// closes after its answer.
func TestMalformedChunks(t *testing.T) {
	for _, chunks := range []string{"zz\r\nab\r\n0\r\n\r\n", "2\r\nabX\r\n0\r\n\r\n", "2\r\nab\n0\r\n\r\n", "1234567890abcdef0\r\n"} {
		_, addr := start(t, echo)
		c, br := dial(t, addr)
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"+chunks)
		res, _ := readResponse(t, br, "POST")
		if res.StatusCode != http.StatusTeapot {
			t.Errorf("%q: status %d, want the handler's read to fail (418)", chunks, res.StatusCode)
		}
		expectClosed(t, br)
	}
}

func TestExpectContinue(t *testing.T) {
	t.Run("read", func(t *testing.T) {
		_, addr := start(t, echo)
		c, br := dial(t, addr)
		io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
		// The body is sent only after the 100.
		line, err := br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("%q %v, want 100 Continue", line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\r\n" {
			t.Fatalf("after 100: %q", blank)
		}
		io.WriteString(c, "abc")
		if _, body := readResponse(t, br, "PUT"); body != "PUT /e abc" {
			t.Errorf("body %q", body)
		}
	})
	t.Run("not read", func(t *testing.T) {
		_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
		}))
		c, br := dial(t, addr)
		io.WriteString(c, "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
		res, _ := readResponse(t, br, "PUT")
		if res.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403 without a 100 first", res.StatusCode)
		}
		// The body was never sent: the connection cannot be reused.
		expectClosed(t, br)
	})
}

// TestUnreadBody: a body the handler did not read is skipped when it is
// all there, else the connection closes after the response.
func TestUnreadBody(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
	for _, want := range []string{"/a", "/b"} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("%q, want %q", body, want)
		}
	}
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nxyz")
	if _, body := readResponse(t, br, "GET"); body != "/c" {
		t.Fatalf("%q", body)
	}
	expectClosed(t, br)
}

// TestResponseFraming: how the length of each kind of response is told.
func TestResponseFraming(t *testing.T) {
	tests := []struct {
		name, method string
		h            http.HandlerFunc
		check        func(*http.Response, string) error
	}{
		{"written whole: length", "GET", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "abc") },
			func(res *http.Response, body string) error {
				if res.ContentLength != 3 || body != "abc" || res.TransferEncoding != nil {
					return fmt.Errorf("length %d %q %v", res.ContentLength, body, res.TransferEncoding)
				}
				if res.Header.Get("Date") == "" {
					return errors.New("no Date")
				}
				return nil
			}},
		{"flushed: chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ab")
			w.(http.Flusher).Flush()
			io.WriteString(w, "cd")
		}, func(res *http.Response, body string) error {
			if len(res.TransferEncoding) != 1 || body != "abcd" {
				return fmt.Errorf("%v %q", res.TransferEncoding, body)
			}
			return nil
		}},
		{"larger than held back: chunked", "GET", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Repeat("x", 100<<10))
		}, func(res *http.Response, body string) error {
			if len(res.TransferEncoding) != 1 || len(body) != 100<<10 {
				return fmt.Errorf("%v %d bytes", res.TransferEncoding, len(body))
			}
			return nil
		}},
		{"given length, large", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "70000")
			w.Write(make([]byte, 30000))
			w.Write(make([]byte, 40000))
		}, func(res *http.Response, body string) error {
			if res.ContentLength != 70000 || len(body) != 70000 {
				return fmt.Errorf("%d %d", res.ContentLength, len(body))
			}
			return nil
		}},
		{"HEAD keeps the length, no body", "HEAD", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "0123456789")
		}, func(res *http.Response, body string) error {
			if res.ContentLength != 10 || body != "" {
				return fmt.Errorf("%d %q", res.ContentLength, body)
			}
			return nil
		}},
		{"204: no length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(http.StatusNoContent)
		}, func(res *http.Response, body string) error {
			if res.StatusCode != 204 || res.Header.Get("Content-Length") != "" || res.TransferEncoding != nil {
				return fmt.Errorf("%d %v", res.StatusCode, res.Header)
			}
			return nil
		}},
		{"304: no length", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotModified)
			if _, err := io.WriteString(w, "x"); err != http.ErrBodyNotAllowed {
				panic(err)
			}
		}, func(res *http.Response, body string) error {
			if res.StatusCode != 304 || res.Header.Get("Content-Length") != "" || res.TransferEncoding != nil || body != "" {
				return fmt.Errorf("%d %v %q", res.StatusCode, res.Header, body)
			}
			return nil
		}},
		{"trailers", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "Grpc-Status")
			io.WriteString(w, "data")
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
		}, func(res *http.Response, body string) error {
			if body != "data" || res.Trailer.Get("Grpc-Status") != "0" || res.Trailer.Get("X-Late") != "yes" {
				return fmt.Errorf("%q trailers %v", body, res.Trailer)
			}
			return nil
		}},
		{"header values cannot split", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-A", "a\r\nX-Injected: 1")
		}, func(res *http.Response, body string) error {
			if res.Header.Get("X-Injected") != "" || res.Header.Get("X-A") != "a  X-Injected: 1" {
				return fmt.Errorf("%v", res.Header)
			}
			return nil
		}},
		{"short of its length: closed", "GET", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "ab")
		}, func(res *http.Response, body string) error {
			return nil // the client sees an unexpected EOF; checked below
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := start(t, tt.h)
			c, br := dial(t, addr)
			fmt.Fprintf(c, "%s / HTTP/1.1\r\nHost: h\r\n\r\n", tt.method)
			if tt.name == "short of its length: closed" {
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadAll(res.Body); err != io.ErrUnexpectedEOF {
					t.Errorf("body read: %v, want unexpected EOF", err)
				}
				return
			}
			res, body := readResponse(t, br, tt.method)
			if err := tt.check(res, body); err != nil {
				t.Error(err)
			}
			// The connection stays usable.
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
			if res, _ := readResponse(t, br, "GET"); res.StatusCode == 0 {
				t.Error("second request failed")
			}
		})
	}
}

// TestOneWrite: a small response is one write on the connection.
func TestOneWrite(t *testing.T) {
	var mu sync.Mutex
	var writes []int
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1024")
		w.WriteHeader(200)
		w.Write(make([]byte, 1024))
	})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(countingListener{Listener: ln, mu: &mu, writes: &writes})
	}()
	defer func() { s.Close(); <-done }()
	c, br := dial(t, ln.Addr().String())
	for range 3 {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(writes) != 3 {
		t.Errorf("writes %v, want one per response", writes)
	}
}

type countingListener struct {
	net.Listener
	mu     *sync.Mutex
	writes *[]int
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, l: l}, nil
}

type countingConn struct {
	net.Conn
	l countingListener
}

func (c countingConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	*c.l.writes = append(*c.l.writes, len(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// TestClientGoneCancels: a handler watching its context learns that the
// client closed the connection.
func TestClientGoneCancels(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan error, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-r.Context().Done():
			canceled <- r.Context().Err()
		case <-time.After(10 * time.Second):
			canceled <- errors.New("not canceled within 10 s")
		}
	}))
	c, _ := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started
	c.Close()
	if err := <-canceled; err != context.Canceled {
		t.Errorf("context: %v, want canceled", err)
	}
}

// TestWatchKeepsPipelinedBytes: watching the context of a request does
// not lose the next request's first bytes, and the context of a request
// is not the next one's.
func TestWatchKeepsPipelinedBytes(t *testing.T) {
	var mu sync.Mutex
	var prev context.Context
	next := make(chan struct{})
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if prev != nil && prev == r.Context() {
			w.WriteHeader(500) // a watched context reused
		}
		prev = r.Context()
		mu.Unlock()
		if r.URL.Path == "/first" {
			_ = r.Context().Done() // starts the watch
			<-next                 // the next request arrives meanwhile
		}
		io.WriteString(w, r.URL.Path)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
	io.WriteString(c, "G") // the watch reads this byte
	close(next)
	if res, body := readResponse(t, br, "GET"); body != "/first" || res.StatusCode != 200 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	io.WriteString(c, "ET /second HTTP/1.1\r\nHost: h\r\n\r\n")
	if res, body := readResponse(t, br, "GET"); body != "/second" || res.StatusCode != 200 {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
}

func TestHijack(t *testing.T) {
	var mu sync.Mutex
	var states []http.ConnState
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		// Echo one line; the client may have sent it with the request.
		line, _ := brw.ReadString('\n')
		io.WriteString(conn, strings.ToUpper(line))
	}), func(s *Server) {
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		}
	})
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nearly\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("%v %v", res, err)
	}
	if line, err := br.ReadString('\n'); line != "EARLY\n" {
		t.Fatalf("%q %v", line, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(states) != fmt.Sprint([]http.ConnState{http.StateNew, http.StateHijacked}) {
		t.Errorf("states %v", states)
	}
}

// TestAbortHandler: panic(http.ErrAbortHandler) after the response started
// leaves the client with a truncated response.
func TestAbortHandler(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(res.Body); err != io.ErrUnexpectedEOF || string(b) != "part" {
		t.Errorf("%q %v, want the first part then unexpected EOF", b, err)
	}
}

func TestTimeouts(t *testing.T) {
	t.Run("header", func(t *testing.T) {
		_, addr := start(t, echo, func(s *Server) { s.ReadHeaderTimeout = 100 * time.Millisecond })
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow: ")
		expectClosed(t, br)
	})
	t.Run("idle", func(t *testing.T) {
		_, addr := start(t, echo, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
		expectClosed(t, br)
	})
	t.Run("body outlives the idle deadline", func(t *testing.T) {
		// The idle deadline set while waiting for the request does not
		// bound the reading of its body.
		_, addr := start(t, echo, func(s *Server) { s.IdleTimeout = 100 * time.Millisecond })
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
		io.WriteString(c, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab")
		<-time.After(250 * time.Millisecond) // past the idle deadline
		io.WriteString(c, "cd")
		if _, body := readResponse(t, br, "POST"); body != "POST /p abcd" {
			t.Errorf("%q", body)
		}
	})
	t.Run("no header timeout while idle", func(t *testing.T) {
		// The header timeout starts at a request's first byte: a
		// connection idle for longer than it still serves.
		s, addr := start(t, echo, func(s *Server) { s.ReadHeaderTimeout = 50 * time.Millisecond })
		c, br := dial(t, addr)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
		readResponse(t, br, "GET")
		// Wait until the server is idle for longer than the header
		// timeout: the connection is idle as soon as it waits.
		waitFor(t, func() bool { return idleConns(s) == 1 })
		timer := time.NewTimer(150 * time.Millisecond)
		<-timer.C
		io.WriteString(c, "GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
		if _, body := readResponse(t, br, "GET"); body != "GET /again " {
			t.Errorf("%q", body)
		}
	})
}

func idleConns(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.state.Load() == stateIdle {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestShutdown: idle connections close at once, a busy one gets its
// response (with Connection: close) and then closes; Shutdown returns
// when both are gone.
func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle, idleBr := dial(t, addr)
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	readResponse(t, idleBr, "GET")
	busy, busyBr := dial(t, addr)
	io.WriteString(busy, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
	<-started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	expectClosed(t, idleBr)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	res, body := readResponse(t, busyBr, "GET")
	if body != "done" || !res.Close {
		t.Errorf("%q close %v, want done and Connection: close", body, res.Close)
	}
	expectClosed(t, busyBr)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	// New connections are refused.
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("still accepting")
	}
}

// TestH2CHandOver: a prior-knowledge HTTP/2 client is served by H2C on
// the same port, and counted once.
func TestH2CHandOver(t *testing.T) {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	var mu sync.Mutex
	var states []http.ConnState
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })
	s, addr := start(t, h, func(s *Server) {
		s.H2C = &http.Server{Handler: h, Protocols: &protos}
		s.ConnState = func(_ net.Conn, st http.ConnState) {
			mu.Lock()
			states = append(states, st)
			mu.Unlock()
		}
	})
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	for range 2 {
		res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "HTTP/2.0" {
			t.Fatalf("served as %q", b)
		}
	}
	// HTTP/1.1 on the same port still works.
	c, br := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n")
	if _, body := readResponse(t, br, "POST"); body != "HTTP/1.1" {
		t.Errorf("HTTP/1.1 served as %q", body)
	}
	c.Close()
	tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) == 4
	})
	mu.Lock()
	defer mu.Unlock()
	news, closed := 0, 0
	for _, st := range states {
		switch st {
		case http.StateNew:
			news++
		case http.StateClosed:
			closed++
		}
	}
	if news != 2 || closed != 2 {
		t.Errorf("states %v, want 2 new and 2 closed", states)
	}
}

// TestDeclaredTrailerMap: Request.Trailer holds the declared keys before
// the body is read and the same map gets the values at its end (the proxy
// hands the map upstream before reading the body).
func TestDeclaredTrailerMap(t *testing.T) {
	got := make(chan string, 1)
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr := r.Trailer
		_, declared := tr["X-Sum"]
		io.ReadAll(r.Body)
		got <- fmt.Sprintf("%v %q %v", declared, tr.Get("X-Sum"), r.TransferEncoding)
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "POST / HTTP/1.1\r\nHost: h\r\nTrailer: x-sum\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Sum: 42\r\n\r\n")
	readResponse(t, br, "POST")
	if s := <-got; s != `true "42" [chunked]` {
		t.Errorf("got %s", s)
	}
}

// TestHTTP10UnknownLength: an HTTP/1.0 response of unknown length is
// ended by closing, never chunked.
func TestHTTP10UnknownLength(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ab")
		w.(http.Flusher).Flush()
		io.WriteString(w, "cd")
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	res, body := readResponse(t, br, "GET")
	if body != "abcd" || res.TransferEncoding != nil || res.ContentLength != -1 || res.Header.Get("Connection") == "keep-alive" {
		t.Errorf("%q TE %v length %d Connection %q", body, res.TransferEncoding, res.ContentLength, res.Header.Get("Connection"))
	}
	expectClosed(t, br)
}

// TestInformational: a 1xx written by the handler goes out before the
// final response, with the header as it stands.
func TestInformational(t *testing.T) {
	_, addr := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		io.WriteString(w, "final")
	}))
	c, br := dial(t, addr)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n")
	hints, err := http.ReadResponse(br, nil)
	if err != nil || hints.StatusCode != http.StatusEarlyHints || hints.Header.Get("Link") == "" {
		t.Fatalf("first response %v %v, want 103 with Link", hints, err)
	}
	res, body := readResponse(t, br, "GET")
	if res.StatusCode != 200 || body != "final" || res.Header.Get("Link") != "" {
		t.Errorf("%d %q %v", res.StatusCode, body, res.Header)
	}
}

// TestConcurrentClients: keep-alive clients with and without bodies, some
// closing early, while the server shuts down at the end (run with -race).
func TestConcurrentClients(t *testing.T) {
	// One request in five starts the watch (as the proxy does 20 ms into a
	// request): watches start and stop while bodies and the next requests
	// arrive.
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "0") || strings.HasSuffix(r.URL.Path, "5") {
			_ = r.Context().Done()
		}
		echo(w, r)
	})
	s, addr := start(t, h, func(s *Server) { s.ReadHeaderTimeout = 5 * time.Second; s.IdleTimeout = time.Minute })
	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				var body io.Reader
				method := "GET"
				want := fmt.Sprintf("GET /%d/%d ", g, i)
				if i%3 == 1 {
					method, body = "POST", strings.NewReader("payload")
					want = fmt.Sprintf("POST /%d/%d payload", g, i)
				}
				req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/%d/%d", addr, g, i), body)
				if i%7 == 6 {
					req.Close = true
				}
				res, err := client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("%q %v, want %q", b, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
