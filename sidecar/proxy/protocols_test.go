package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestProtocols(t *testing.T) {
	echoProto := func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "%s", r.Proto) }
	h1 := upstream(t, false, echoProto)
	h2 := upstream(t, true, echoProto)
	rc := &config.RouteConfig{VirtualHosts: []*config.VirtualHost{{Domains: []string{"*"}, Routes: []*config.Route{
		{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/h2", CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "h2"}},
		{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "h1"}},
	}}}}
	p := startProxy(t, rc, map[string]*config.Cluster{"h1": oneHost("h1", addrOf(h1), config.HTTP1), "h2": oneHost("h2", addrOf(h2), config.HTTP2)}, nil)
	tests := []struct {
		name       string
		h2c        bool
		path       string
		downstream string
		upstream   string
	}{
		{"h1 to h1", false, "/", "HTTP/1.1", "HTTP/1.1"},
		{"h1 to h2c", false, "/h2", "HTTP/1.1", "HTTP/2.0"},
		{"h2c to h1", true, "/", "HTTP/2.0", "HTTP/1.1"},
		{"h2c to h2c", true, "/h2", "HTTP/2.0", "HTTP/2.0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := get(t, client(t, tc.h2c), newReq(t, "GET", p.url(tc.path), ""))
			if res.Proto != tc.downstream || body != tc.upstream {
				t.Errorf("downstream %s upstream %s; want %s %s", res.Proto, body, tc.downstream, tc.upstream)
			}
		})
	}
}

func TestStreamingIsNotBuffered(t *testing.T) {
	release := make(chan struct{})
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "second\n")
	})
	p := startProxy(t, catchAll(toCluster("c")), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, err := client(t, false).Do(newReq(t, "GET", p.url("/"), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n') // arrives while the upstream still holds the response
	if err != nil || line != "first\n" {
		t.Fatalf("first chunk %q, %v", line, err)
	}
	close(release)
	if rest, _ := io.ReadAll(br); string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestUpgradePassesThrough(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" || !strings.EqualFold(r.Header.Get("Connection"), "upgrade") {
			http.Error(w, "not an upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		// Echo lines upper-cased until the client half-closes.
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(conn, strings.ToUpper(line))
		}
	})
	p := startProxy(t, catchAll(toCluster("ws")), map[string]*config.Cluster{"ws": oneHost("ws", addrOf(up), config.HTTP1)}, nil)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /chat HTTP/1.1\r\nHost: svc\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 101 || res.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("response %d %v", res.StatusCode, res.Header)
	}
	for _, msg := range []string{"hello\n", "again\n"} {
		io.WriteString(conn, msg)
		got, err := br.ReadString('\n')
		if err != nil || got != strings.ToUpper(msg) {
			t.Fatalf("echo %q, %v; want %q", got, err, strings.ToUpper(msg))
		}
	}
	conn.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after half-close: %q, %v", rest, err)
	}
	if f := p.logFor(t, "/chat"); f["status"] != int64(101) {
		t.Errorf("access log %v", f)
	}
}

func TestUpgradeTimeouts(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			io.WriteString(conn, strings.ToUpper(line))
		}
	})
	rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true},
		Forward: &config.RouteAction{Cluster: "ws", Timeout: 200 * time.Millisecond, IdleTimeout: 600 * time.Millisecond}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"ws": oneHost("ws", addrOf(up), config.HTTP1)}, nil)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: svc\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", res, err)
	}
	// Active for 4× the route timeout: the session lives on.
	for i := range 8 {
		io.WriteString(conn, "ping\n")
		if got, err := br.ReadString('\n'); err != nil || got != "PING\n" {
			t.Fatalf("message %d: %q %v", i, got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Idle past the idle timeout: the proxy closes it.
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read while idle: %v, want EOF", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v idle, want about 600ms", d)
	}
}

// TestHTTP1UpstreamFraming: what the proxy's own HTTP/1.1 exchange must
// carry end to end: trailers, bodiless responses (HEAD, 204, 304), a
// chunked request body, 100-continue, and connection reuse.
func TestHTTP1UpstreamFraming(t *testing.T) {
	up, hits := counted(t, false, func(_ int32, w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/trailers":
			w.Header().Set("Trailer", "X-Checksum")
			io.WriteString(w, "body")
			w.Header().Set("X-Checksum", "abc")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/notmodified":
			w.Header().Set("ETag", `"v1"`)
			w.WriteHeader(http.StatusNotModified)
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %d %q", r.Method, r.ContentLength, b)
		default:
			w.Header().Set("Content-Length", "5")
			if r.Method != "HEAD" {
				io.WriteString(w, "hello")
			}
		}
	})
	p := startProxy(t, catchAll(toCluster("c")), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	c := client(t, false)

	res, body := get(t, c, newReq(t, "GET", p.url("/trailers"), ""))
	if body != "body" || res.Trailer.Get("X-Checksum") != "abc" {
		t.Errorf("trailers: %q, trailer %v", body, res.Trailer)
	}
	res, body = get(t, c, newReq(t, "HEAD", p.url("/"), ""))
	if res.StatusCode != 200 || body != "" || res.ContentLength != 5 {
		t.Errorf("HEAD: %d %q length %d, want 200, no body, length 5", res.StatusCode, body, res.ContentLength)
	}
	for path, code := range map[string]int{"/nocontent": 204, "/notmodified": 304} {
		if res, body := get(t, c, newReq(t, "GET", p.url(path), "")); res.StatusCode != code || body != "" {
			t.Errorf("%s: %d %q, want %d without body", path, res.StatusCode, body, code)
		}
	}
	req := newReq(t, "POST", p.url("/echo"), "")
	req.Body = io.NopCloser(strings.NewReader("chunked up")) // unknown length: chunked
	if _, body := get(t, c, req); body != `POST -1 "chunked up"` {
		t.Errorf("chunked request body: upstream saw %s", body)
	}
	req = newReq(t, "PUT", p.url("/echo"), "waited for", "Expect", "100-continue")
	if _, body := get(t, c, req); body != `PUT 10 "waited for"` {
		t.Errorf("100-continue: upstream saw %s", body)
	}
	before := hits.Load()
	for range 5 {
		get(t, c, newReq(t, "GET", p.url("/"), ""))
	}
	if n := hits.Load() - before; n != 5 {
		t.Fatalf("%d upstream requests, want 5", n)
	}
	var conns int64
	for _, hs := range p.set.Status() {
		conns += hs.ActiveConnections
	}
	if conns != 1 {
		t.Errorf("%d upstream connections after sequential requests, want 1 (reused)", conns)
	}
}
