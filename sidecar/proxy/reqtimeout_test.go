package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestRequestTimeout: the connection manager's request_timeout bounds how
// long a client may take to send its whole request (a slow client cannot
// hold the proxy), and no longer applies once the request is in.
func TestRequestTimeout(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/slow-response" {
			time.Sleep(500 * time.Millisecond)
		}
		w.Write([]byte("ok"))
	})
	hcm := &config.HTTPConnectionManager{RequestTimeout: 300 * time.Millisecond, GenerateRequestID: true}
	tests := []struct {
		name   string
		policy *config.RetryPolicy
	}{
		{"streamed body", nil},
		{"buffered body (retry policy)", fastPolicy(config.Retry5xx)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			px := startProxy(t, catchAll(retryRoute("c", tt.policy, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, hcm)

			// A client that sends 3 of the 100 bytes it announced, then
			// nothing.
			conn, err := net.Dial("tcp", px.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			io.WriteString(conn, "POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response to a stalled request: %v", err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout {
				t.Errorf("stalled request: status %d, want 408 (%v)", res.StatusCode, px.logFor(t, "/stalled"))
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("answered after %v with a 300 ms request_timeout", d)
			}

			// The timeout covers receiving the request, not the response.
			res, body := get(t, client(t, false), newReq(t, "POST", px.url("/slow-response"), "body"))
			if res.StatusCode != 200 || body != "ok" {
				t.Errorf("slow response: %d %q, want 200 ok", res.StatusCode, body)
			}
			res, _ = get(t, client(t, false), newReq(t, "GET", px.url("/slow-response"), ""))
			if res.StatusCode != 200 {
				t.Errorf("slow response without a body: %d, want 200", res.StatusCode)
			}
		})
	}
}

// TestStalledBodyIdlesOut: without a request_timeout, the stream idle
// timeout still frees the proxy from a client that stops sending its body.
func TestStalledBodyIdlesOut(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})
	hcm := &config.HTTPConnectionManager{StreamIdleTimeout: 150 * time.Millisecond}
	for _, p := range []*config.RetryPolicy{nil, fastPolicy(config.Retry5xx)} {
		t.Run(map[bool]string{true: "streamed body", false: "buffered body"}[p == nil], func(t *testing.T) {
			px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, hcm)
			conn, err := net.Dial("tcp", px.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(conn, "POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no response to a stalled body: %v", err)
			}
			res.Body.Close()
			if e := px.logFor(t, "/stalled"); res.StatusCode != http.StatusRequestTimeout || e["response_flags"] != "SI" {
				t.Errorf("status %d flags %v, want 408 SI", res.StatusCode, e["response_flags"])
			}
		})
	}
}
