package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// rawUpstream accepts connections and hands each to fn (for upstreams that
// misbehave below HTTP).
func rawUpstream(t *testing.T, fn func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fn(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestUpstreamErrors(t *testing.T) {
	slowDone := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(slowDone) }) }
	t.Cleanup(release)
	slow := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-slowDone:
		}
	})
	ok := upstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	closes := rawUpstream(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.Close()
	})
	garbage := rawUpstream(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		io.WriteString(c, "HTTP/1.1 abc nonsense\r\n\r\n")
		c.Close()
	})
	clusters := map[string]*config.Cluster{
		"dead":    oneHost("dead", deadAddr(t), config.HTTP1),
		"slow":    oneHost("slow", addrOf(slow), config.HTTP1),
		"closes":  oneHost("closes", closes, config.HTTP1),
		"garbage": oneHost("garbage", garbage, config.HTTP1),
		"full":    {Name: "full", CircuitBreakers: config.CircuitBreakers{MaxRequests: 1}, Endpoints: []config.Endpoint{{Address: addrOf(slow), Weight: 1}}},
		"empty":   {Name: "empty", Endpoints: []config.Endpoint{{Address: addrOf(ok), Weight: 1, Health: config.HealthUnhealthy}}},
	}
	route := func(prefix, cluster string, timeout time.Duration) *config.Route {
		return &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: prefix, CaseSensitive: true},
			Forward: &config.RouteAction{Cluster: cluster, Timeout: timeout}}
	}
	rc := &config.RouteConfig{VirtualHosts: []*config.VirtualHost{{Domains: []string{"svc"}, Routes: []*config.Route{
		route("/dead", "dead", 0),
		route("/slow", "slow", 100*time.Millisecond),
		route("/full", "full", 0),
		route("/closes", "closes", 0),
		route("/garbage", "garbage", 0),
		route("/empty", "empty", 0),
		route("/nocluster", "missing", 0),
	}}}}
	p := startProxy(t, rc, clusters, nil)
	c := client(t, false)

	// Occupy "full"'s only request slot.
	occupied := make(chan struct{})
	go func() {
		defer close(occupied)
		req := newReq(t, "GET", p.url("/full"), "")
		req.Host = "svc"
		if res, err := c.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.set.Snapshot()["full"].Pick(0, false).Active() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the occupying request never reached the cluster")
		}
		time.Sleep(time.Millisecond)
	}

	tests := []struct {
		name, host, path string
		code             int
		flag             string
	}{
		{"dead backend", "svc", "/dead", 503, "UF"},
		{"slow backend", "svc", "/slow", 504, "UT"},
		{"overflow", "svc", "/full", 503, "UO"},
		{"closed before headers", "svc", "/closes", 503, "UC"},
		{"bad response", "svc", "/garbage", 502, "UPE"},
		{"no healthy host", "svc", "/empty", 503, "UH"},
		{"unknown cluster", "svc", "/nocluster", 503, "NC"},
		{"no route", "svc", "/nothing", 404, "NR"},
		{"no virtual host", "other", "/dead?novh", 404, "NR"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(t, "GET", p.url(tc.path), "")
			req.Host = tc.host
			start := time.Now()
			res, body := get(t, c, req)
			if res.StatusCode != tc.code {
				t.Errorf("status %d (%q), want %d", res.StatusCode, body, tc.code)
			}
			entry := p.logFor(t, tc.path)
			if entry["response_flags"] != tc.flag || entry["path"] != tc.path {
				t.Errorf("access log flags %v for %v, want %s for %s", entry["response_flags"], entry["path"], tc.flag, tc.path)
			}
			if (res.Header.Get("X-Envoy-Overloaded") == "true") != (tc.flag == "UO") {
				t.Errorf("x-envoy-overloaded = %q with flag %s", res.Header.Get("X-Envoy-Overloaded"), tc.flag)
			}
			if tc.flag == "UT" && time.Since(start) > 3*time.Second {
				t.Errorf("timeout took %v", time.Since(start))
			}
		})
	}
	release()
	<-occupied
	// Metrics counted the codes by cluster.
	mfs, err := p.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "consulate_sidecar_upstream_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["cluster"] == "dead" && labels["code"] == "503" && m.GetCounter().GetValue() == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Error("no requests_total{cluster=dead,code=503} = 1")
	}
}

func TestTimeoutAfterHeadersResetsDownstream(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "c", Timeout: 100 * time.Millisecond}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, err := client(t, false).Do(newReq(t, "GET", p.url("/"), ""))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("body %q read completely; want a reset after the timeout", b)
	}
	if !strings.HasPrefix(string(b), "partial") {
		t.Errorf("body %q, want the streamed prefix", b)
	}
	if f := p.logFor(t, "/")["response_flags"]; f != "UT" {
		t.Errorf("flags %v, want UT", f)
	}
}

func TestStreamIdleTimeout(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/silent" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		// Busy: a chunk every 30 ms for ~300 ms, longer than the idle
		// timeout in total but never idle that long.
		for i := range 10 {
			fmt.Fprintf(w, "%d", i)
			w.(http.Flusher).Flush()
			time.Sleep(30 * time.Millisecond)
		}
	})
	rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "c", IdleTimeout: 150 * time.Millisecond}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	c := client(t, false)
	res, body := get(t, c, newReq(t, "GET", p.url("/busy"), ""))
	if res.StatusCode != 200 || body != "0123456789" {
		t.Errorf("busy stream: %d %q, want 200 0123456789", res.StatusCode, body)
	}
	res, _ = get(t, c, newReq(t, "GET", p.url("/silent"), ""))
	if res.StatusCode != http.StatusRequestTimeout {
		t.Errorf("silent upstream: status %d, want 408", res.StatusCode)
	}
	if f := p.logFor(t, "/silent")["response_flags"]; f != "SI" {
		t.Errorf("flags %v, want SI", f)
	}
}

func TestHTTP2StreamReset(t *testing.T) {
	up := upstream(t, true, func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // RST_STREAM before any header
	})
	p := startProxy(t, catchAll(toCluster("c")), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP2)}, nil)
	res, _ := get(t, client(t, false), newReq(t, "GET", p.url("/reset"), ""))
	if res.StatusCode != 503 {
		t.Errorf("status %d, want 503", res.StatusCode)
	}
	if f := p.logFor(t, "/reset")["response_flags"]; f != "UR" {
		t.Errorf("flags %v, want UR", f)
	}
}
