package h1server

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// FuzzReadRequest feeds arbitrary bytes to the request parser and body
// reader: no panic, and what is accepted is consistent (a token method,
// a target, a body of the announced length).
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
		"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3\r\nabc\r\n0\r\nX-T: v\r\n\r\n",
		"GET http://a/b HTTP/1.0\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nhost: h\r\nx-a: 1\r\n 2\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := testConn(data)
		err := c.readRequest()
		if err != nil {
			var se *statusError
			if !errors.As(err, &se) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind %T %v", err, err)
			}
			return
		}
		r := c.req
		if !h1wire.ValidToken(r.Method) || r.RequestURI == "" || r.URL == nil || r.ProtoMajor != 1 {
			t.Fatalf("accepted %q %q %d", r.Method, r.RequestURI, r.ProtoMajor)
		}
		if r.ContentLength > 0 && r.TransferEncoding != nil {
			t.Fatal("both a length and chunked")
		}
		// What is accepted, net/http's parser accepts too (it is the more
		// lenient of the two) and reads the same way.
		// (Empty lines before the request line are skipped here, by
		// net/http's server only after a POST.)
		std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(bytes.TrimLeft(data, "\r\n"))))
		if err != nil {
			t.Fatalf("accepted, net/http refuses: %v", err)
		}
		if std.Method != r.Method || std.RequestURI != r.RequestURI || std.ContentLength != r.ContentLength || std.Host != r.Host {
			t.Fatalf("read as %q %q %d %q, net/http %q %q %d %q", r.Method, r.RequestURI, r.ContentLength, r.Host,
				std.Method, std.RequestURI, std.ContentLength, std.Host)
		}
		b, err := io.ReadAll(r.Body)
		if err == nil && r.ContentLength >= 0 && int64(len(b)) != r.ContentLength {
			t.Fatalf("body of %d bytes, announced %d", len(b), r.ContentLength)
		}
	})
}

// testConn is a conn reading data, writing nowhere.
func testConn(data []byte) *conn {
	s := &Server{MaxHeaderBytes: 1 << 10}
	c := &conn{s: s, nc: nopConn{}}
	c.wcond.L = &c.wmu
	c.cr.c = c
	c.br = bufio.NewReaderSize(bytes.NewReader(data), 64)
	c.rctx = &reqCtx{c: c}
	c.req = (&http.Request{}).WithContext(c.rctx)
	c.hdr = http.Header{}
	c.rw.c = c
	c.rw.hdr = http.Header{}
	return c
}

type nopConn struct{ net.Conn }

func (nopConn) Write(p []byte) (int, error) { return len(p), nil }
