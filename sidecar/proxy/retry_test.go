package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// retryRoute routes everything to cluster c with retry policy p.
func retryRoute(c string, p *config.RetryPolicy, timeout time.Duration) *config.Route {
	return &config.Route{Name: "retry", Match: config.RouteMatch{CaseSensitive: true},
		Forward: &config.RouteAction{Cluster: c, RetryPolicy: p, Timeout: timeout}}
}

// fastPolicy retries once on `on` with a 1 ms back-off base (the default
// 25 ms would only slow the tests down).
func fastPolicy(on config.RetryOn) *config.RetryPolicy {
	return &config.RetryPolicy{RetryOn: on, NumRetries: 1, BackOffBase: time.Millisecond, BackOffMax: 10 * time.Millisecond, HostSelectionAttempts: 1}
}

// counted is an upstream that counts requests and answers with fn, which
// gets the 1-based request number.
func counted(t *testing.T, h2 bool, fn func(n int32, w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	s := upstream(t, h2, func(w http.ResponseWriter, r *http.Request) { fn(hits.Add(1), w, r) })
	return s, &hits
}

// failWith answers every request with status and headers (key, value …).
func failWith(status int, hdr ...string) func(int32, http.ResponseWriter, *http.Request) {
	return func(_ int32, w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(status)
	}
}

func TestRetryOnConditions(t *testing.T) {
	type upstreamKind int
	const (
		respond upstreamKind = iota // status + headers
		reset                       // closes the connection after the request
		dead                        // nothing listens
		slow                        // never answers (per-try timeout)
	)
	grpcHdr := func(code string) []string { return []string{"Content-Type", "application/grpc", "Grpc-Status", code} }
	tests := []struct {
		name         string
		on           config.RetryOn
		codes        []uint32
		kind         upstreamKind
		status       int
		hdr          []string
		wantAttempts int64
		wantStatus   int
		wantFlags    string
	}{
		{name: "5xx retries 503", on: config.Retry5xx, status: 503, wantAttempts: 2, wantStatus: 503, wantFlags: "URX"},
		{name: "5xx retries 500", on: config.Retry5xx, status: 500, wantAttempts: 2, wantStatus: 500, wantFlags: "URX"},
		{name: "5xx does not retry 404", on: config.Retry5xx, status: 404, wantAttempts: 1, wantStatus: 404, wantFlags: "-"},
		{name: "5xx does not retry an x-envoy-overloaded 503", on: config.Retry5xx, status: 503, hdr: []string{"X-Envoy-Overloaded", "true"}, wantAttempts: 1, wantStatus: 503, wantFlags: "-"},
		{name: "5xx retries a connect failure", on: config.Retry5xx, kind: dead, wantAttempts: 2, wantStatus: 503, wantFlags: "UF,URX"},
		{name: "5xx retries a reset", on: config.Retry5xx, kind: reset, wantAttempts: 2, wantStatus: 503, wantFlags: "UC,URX"},
		{name: "5xx retries a per-try timeout", on: config.Retry5xx, kind: slow, wantAttempts: 2, wantStatus: 504, wantFlags: "UT,URX"},
		{name: "gateway-error retries 502", on: config.RetryGatewayError, status: 502, wantAttempts: 2, wantStatus: 502, wantFlags: "URX"},
		{name: "gateway-error retries 504", on: config.RetryGatewayError, status: 504, wantAttempts: 2, wantStatus: 504, wantFlags: "URX"},
		{name: "gateway-error does not retry 500", on: config.RetryGatewayError, status: 500, wantAttempts: 1, wantStatus: 500, wantFlags: "-"},
		{name: "gateway-error retries a per-try timeout", on: config.RetryGatewayError, kind: slow, wantAttempts: 2, wantStatus: 504, wantFlags: "UT,URX"},
		{name: "reset retries a reset", on: config.RetryReset, kind: reset, wantAttempts: 2, wantStatus: 503, wantFlags: "UC,URX"},
		{name: "reset does not retry 503", on: config.RetryReset, status: 503, wantAttempts: 1, wantStatus: 503, wantFlags: "-"},
		{name: "connect-failure retries a connect failure", on: config.RetryConnectFailure, kind: dead, wantAttempts: 2, wantStatus: 503, wantFlags: "UF,URX"},
		{name: "connect-failure does not retry a reset", on: config.RetryConnectFailure, kind: reset, wantAttempts: 1, wantStatus: 503, wantFlags: "UC"},
		{name: "connect-failure does not retry a per-try timeout", on: config.RetryConnectFailure, kind: slow, wantAttempts: 1, wantStatus: 504, wantFlags: "UT"},
		{name: "connect-failure does not retry 503", on: config.RetryConnectFailure, status: 503, wantAttempts: 1, wantStatus: 503, wantFlags: "-"},
		{name: "retriable-4xx retries 409", on: config.RetryRetriable4xx, status: 409, wantAttempts: 2, wantStatus: 409, wantFlags: "URX"},
		{name: "retriable-4xx does not retry 429", on: config.RetryRetriable4xx, status: 429, wantAttempts: 1, wantStatus: 429, wantFlags: "-"},
		{name: "retriable-status-codes retries a listed code", on: config.RetryRetriableStatusCodes, codes: []uint32{429}, status: 429, wantAttempts: 2, wantStatus: 429, wantFlags: "URX"},
		{name: "retriable-status-codes does not retry others", on: config.RetryRetriableStatusCodes, codes: []uint32{429}, status: 503, wantAttempts: 1, wantStatus: 503, wantFlags: "-"},
		{name: "unavailable retries grpc-status 14", on: config.RetryGRPCUnavailable, status: 200, hdr: grpcHdr("14"), wantAttempts: 2, wantStatus: 200, wantFlags: "URX"},
		{name: "unavailable does not retry grpc-status 13", on: config.RetryGRPCUnavailable, status: 200, hdr: grpcHdr("13"), wantAttempts: 1, wantStatus: 200, wantFlags: "-"},
		{name: "internal retries grpc-status 13", on: config.RetryGRPCInternal, status: 200, hdr: grpcHdr("13"), wantAttempts: 2, wantStatus: 200, wantFlags: "URX"},
		{name: "cancelled retries grpc-status 1", on: config.RetryGRPCCancelled, status: 200, hdr: grpcHdr("1"), wantAttempts: 2, wantStatus: 200, wantFlags: "URX"},
		{name: "deadline-exceeded retries grpc-status 4", on: config.RetryGRPCDeadlineExceeded, status: 200, hdr: grpcHdr("4"), wantAttempts: 2, wantStatus: 200, wantFlags: "URX"},
		{name: "resource-exhausted retries grpc-status 8", on: config.RetryGRPCResourceExhausted, status: 200, hdr: grpcHdr("8"), wantAttempts: 2, wantStatus: 200, wantFlags: "URX"},
		{name: "5xx does not retry a gRPC error", on: config.Retry5xx, status: 200, hdr: grpcHdr("14"), wantAttempts: 1, wantStatus: 200, wantFlags: "-"},
		{name: "no retry policy condition retries nothing", on: 0, status: 503, wantAttempts: 1, wantStatus: 503, wantFlags: "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			var hits *atomic.Int32
			switch tt.kind {
			case respond:
				var s *httptest.Server
				s, hits = counted(t, false, failWith(tt.status, tt.hdr...))
				addr = addrOf(s)
			case reset:
				hits = new(atomic.Int32)
				addr = rawUpstream(t, func(c net.Conn) {
					bufio.NewReader(c).ReadString('\n')
					hits.Add(1)
					c.Close()
				})
			case dead:
				addr = deadAddr(t)
			case slow:
				var s *httptest.Server
				s, hits = counted(t, false, func(_ int32, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
				addr = addrOf(s)
			}
			p := fastPolicy(tt.on)
			p.RetriableStatusCodes = tt.codes
			if tt.kind == slow {
				// Only here: under load a healthy attempt may take longer.
				p.PerTryTimeout = 50 * time.Millisecond
			}
			px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addr, config.HTTP1)}, nil)
			res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/cond"), ""))
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			e := px.logFor(t, "/cond")
			if e["attempts"] != tt.wantAttempts || e["response_flags"] != tt.wantFlags {
				t.Errorf("access log attempts %v flags %v, want %d %s", e["attempts"], e["response_flags"], tt.wantAttempts, tt.wantFlags)
			}
			if hits != nil && int64(hits.Load()) != tt.wantAttempts {
				t.Errorf("upstream saw %d requests, want %d", hits.Load(), tt.wantAttempts)
			}
		})
	}
}

func TestRetryRecovers(t *testing.T) {
	var ids []string
	idc := make(chan string, 4)
	up, hits := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		idc <- r.Header.Get("X-Request-Id")
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		w.Write([]byte("ok"))
	})
	p := fastPolicy(config.Retry5xx)
	px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, body := get(t, client(t, false), newReq(t, "GET", px.url("/recover"), ""))
	if res.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q, want 200 ok", res.StatusCode, body)
	}
	if hits.Load() != 2 {
		t.Errorf("upstream saw %d requests, want 2", hits.Load())
	}
	ids = append(ids, <-idc, <-idc)
	if ids[0] == "" || ids[0] != ids[1] {
		t.Errorf("x-request-id per attempt %q: want one generated id for both", ids)
	}
	e := px.logFor(t, "/recover")
	if e["attempts"] != int64(2) || e["response_flags"] != "-" || e["status"] != int64(200) {
		t.Errorf("access log attempts %v flags %v status %v, want 2 - 200", e["attempts"], e["response_flags"], e["status"])
	}
	if got := counterValue(t, px, "consulate_sidecar_upstream_retries_total", "cluster", "c"); got != 1 {
		t.Errorf("upstream_retries_total = %v, want 1", got)
	}
	if got := counterValue(t, px, "consulate_sidecar_upstream_retry_outcomes_total", "cluster", "c", "outcome", "success"); got != 1 {
		t.Errorf("retry outcome success = %v, want 1", got)
	}
}

func TestRetryVirtualHostPolicy(t *testing.T) {
	up, hits := counted(t, false, failWith(503))
	rc := catchAll(toCluster("c"))
	rc.VirtualHosts[0].RetryPolicy = fastPolicy(config.Retry5xx)
	rc.VirtualHosts[0].RetryPolicy.NumRetries = 2
	px := startProxy(t, rc, map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/vh"), ""))
	if res.StatusCode != 503 || hits.Load() != 3 {
		t.Errorf("status %d after %d upstream requests, want 503 after 3 (the virtual host's num_retries 2)", res.StatusCode, hits.Load())
	}
	// A route's own policy wins over the virtual host's.
	rc.VirtualHosts[0].Routes[0].Forward.RetryPolicy = fastPolicy(config.RetryConnectFailure)
	px2 := startProxy(t, rc, map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	hits.Store(0)
	get(t, client(t, false), newReq(t, "GET", px2.url("/route"), ""))
	if hits.Load() != 1 {
		t.Errorf("route policy (connect-failure) got %d upstream requests for a 503, want 1", hits.Load())
	}
}

func TestRetryPreviousHosts(t *testing.T) {
	var served [3]atomic.Int32
	var addrs []string
	hostOf := map[string]int{}
	for i := range served {
		s := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
			served[i].Add(1)
			w.Header().Set("X-Host", string(rune('a'+i)))
			w.WriteHeader(503)
		})
		addrs = append(addrs, addrOf(s))
		hostOf[addrOf(s)] = i
	}
	eps := func() []config.Endpoint {
		var out []config.Endpoint
		for _, a := range addrs {
			out = append(out, config.Endpoint{Address: a, Weight: 1})
		}
		return out
	}
	// Random load balancing: without the predicate, a retry lands on the
	// same host one time in three.
	cl := &config.Cluster{Name: "c", LBPolicy: config.Random, ConnectTimeout: time.Second, Endpoints: eps()}
	tests := []struct {
		name          string
		previousHosts bool
	}{
		{"previous_hosts avoids the hosts already tried", true},
		{"without previous_hosts a retry may repeat a host", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fastPolicy(config.Retry5xx)
			p.NumRetries = 2
			p.RetryPreviousHosts = tt.previousHosts
			p.HostSelectionAttempts = 50
			px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": cl}, nil)
			c := client(t, false)
			repeats := 0
			const requests = 30
			for range requests {
				before := [3]int32{served[0].Load(), served[1].Load(), served[2].Load()}
				get(t, c, newReq(t, "GET", px.url("/ph"), ""))
				for i := range served {
					if d := served[i].Load() - before[i]; d > 1 {
						repeats++
					}
				}
			}
			switch {
			case tt.previousHosts && repeats > 0:
				t.Errorf("%d requests tried a host twice with previous_hosts", repeats)
			case !tt.previousHosts && repeats == 0:
				t.Errorf("no request of %d repeated a host without previous_hosts: the test cannot tell the predicate works", requests)
			}
		})
	}
}

func TestRetryBodyReplay(t *testing.T) {
	t.Run("HTTP/1.1 upstream", func(t *testing.T) { testRetryBodyReplay(t, config.HTTP1) })
	// The HTTP/2 transport reads and closes request bodies from its own
	// goroutines: the race detector checks the pooled buffer's hand-off.
	t.Run("HTTP/2 upstream", func(t *testing.T) { testRetryBodyReplay(t, config.HTTP2) })
}

func testRetryBodyReplay(t *testing.T, proto config.Protocol) {
	bodies := make(chan string, 8)
	up, hits := counted(t, proto == config.HTTP2, func(n int32, w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("upstream body read: %v", err)
		}
		bodies <- string(b)
		if n == 1 || r.URL.Path == "/large" {
			w.WriteHeader(503)
			return
		}
		w.Write([]byte("got " + r.Header.Get("Content-Length")))
	})
	px := startProxy(t, catchAll(retryRoute("c", fastPolicy(config.Retry5xx), 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), proto)}, nil)
	st := *px.handler.State()
	st.BufferLimit = 64 << 10
	px.handler.Swap(&st)

	small := strings.Repeat("0123456789abcdef", 4<<10) // 64 KiB: exactly the limit
	res, body := get(t, client(t, false), newReq(t, "POST", px.url("/small"), small))
	if res.StatusCode != 200 {
		t.Fatalf("small body: status %d %q, want 200 after a retry", res.StatusCode, body)
	}
	for i := range 2 {
		if got := <-bodies; got != small {
			t.Errorf("attempt %d sent a body of %d bytes, want the %d sent by the client", i+1, len(got), len(small))
		}
	}
	if e := px.logFor(t, "/small"); e["attempts"] != int64(2) || e["bytes_received"] != int64(len(small)) {
		t.Errorf("access log attempts %v bytes_received %v, want 2 and %d", e["attempts"], e["bytes_received"], len(small))
	}

	hits.Store(0)
	large := small + "!" // one byte over: streamed, never retried
	res, _ = get(t, client(t, false), newReq(t, "POST", px.url("/large"), large))
	if res.StatusCode != 503 || hits.Load() != 1 {
		t.Errorf("large body: status %d after %d attempts, want 503 after 1", res.StatusCode, hits.Load())
	}
	if got := <-bodies; got != large {
		t.Errorf("large body reached the upstream as %d bytes, want %d", len(got), len(large))
	}
	if e := px.logFor(t, "/large"); e["attempts"] != int64(1) || e["response_flags"] != "-" {
		t.Errorf("access log attempts %v flags %v, want 1 - (not retried, so not URX)", e["attempts"], e["response_flags"])
	}

	// Chunked (unknown length) bodies are buffered the same way.
	hits.Store(0)
	req := newReq(t, "POST", px.url("/chunked"), "")
	req.Body = io.NopCloser(strings.NewReader("chunked body"))
	req.ContentLength = -1
	res, _ = get(t, client(t, false), req)
	if res.StatusCode != 200 || hits.Load() != 2 {
		t.Errorf("chunked body: status %d after %d attempts, want 200 after 2", res.StatusCode, hits.Load())
	}
	for range 2 {
		if got := <-bodies; got != "chunked body" {
			t.Errorf("chunked attempt body %q", got)
		}
	}
}

func TestPerTryTimeout(t *testing.T) {
	up, hits := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // the first attempt hangs
			return
		}
		w.Write([]byte("second"))
	})
	p := fastPolicy(config.Retry5xx)
	p.PerTryTimeout = 200 * time.Millisecond
	px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	start := time.Now()
	res, body := get(t, client(t, false), newReq(t, "GET", px.url("/pertry"), ""))
	if res.StatusCode != 200 || body != "second" || hits.Load() != 2 {
		t.Fatalf("got %d %q after %d attempts, want 200 second after 2", res.StatusCode, body, hits.Load())
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 3*time.Second {
		t.Errorf("took %v: the per-try timeout is 200 ms", d)
	}
}

func TestRouteTimeoutBoundsAllAttempts(t *testing.T) {
	up, hits := counted(t, false, func(_ int32, _ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	p := fastPolicy(config.Retry5xx)
	p.NumRetries = 100
	p.PerTryTimeout = 60 * time.Millisecond
	px := startProxy(t, catchAll(retryRoute("c", p, 300*time.Millisecond)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	start := time.Now()
	res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/global"), ""))
	d := time.Since(start)
	if res.StatusCode != 504 {
		t.Errorf("status %d, want 504", res.StatusCode)
	}
	if d < 300*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %v, want about the 300 ms route timeout", d)
	}
	e := px.logFor(t, "/global")
	if e["response_flags"] != "UT" {
		t.Errorf("flags %v, want UT (the route timeout, not URX)", e["response_flags"])
	}
	if n := hits.Load(); n < 2 || n > 6 {
		t.Errorf("%d attempts in 300 ms with a 60 ms per-try timeout, want 2..6", n)
	}
}

func TestPerTryIdleTimeout(t *testing.T) {
	up, hits := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			<-r.Context().Done() // silent
			return
		}
		// Slow but never idle for 250 ms: 6 chunks 40 ms apart.
		for i := range 6 {
			w.Write([]byte{byte('0' + i)})
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
	})
	p := fastPolicy(config.Retry5xx)
	p.PerTryIdleTimeout = 250 * time.Millisecond
	px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, body := get(t, client(t, false), newReq(t, "GET", px.url("/idle"), ""))
	if res.StatusCode != 200 || body != "012345" || hits.Load() != 2 {
		t.Errorf("got %d %q after %d attempts, want 200 012345 after 2", res.StatusCode, body, hits.Load())
	}
}

// counterValue reads a counter from the proxy's registry; labels are
// name, value pairs that must all match.
func counterValue(t *testing.T, px *testProxy, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := px.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestRetryAfterEarlyResponse: the upstream answers 503 before reading the
// body, so the transport abandons (and closes) the attempt's body while it
// may still be sending it; the retry must still send the whole body, and
// the race detector checks that no attempt reads the pooled buffer after
// it went back to the pool.
func TestRetryAfterEarlyResponse(t *testing.T) {
	body := strings.Repeat("x", 200<<10)
	for _, proto := range []config.Protocol{config.HTTP1, config.HTTP2} {
		t.Run(map[config.Protocol]string{config.HTTP1: "HTTP/1.1", config.HTTP2: "HTTP/2"}[proto], func(t *testing.T) {
			up, _ := counted(t, proto == config.HTTP2, func(n int32, w http.ResponseWriter, r *http.Request) {
				if n%2 == 1 {
					w.WriteHeader(503) // without reading the body
					return
				}
				b, _ := io.ReadAll(r.Body)
				w.Write([]byte(strconv.Itoa(len(b))))
			})
			px := startProxy(t, catchAll(retryRoute("c", fastPolicy(config.Retry5xx), 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), proto)}, nil)
			c := client(t, false)
			for i := range 10 {
				res, got := get(t, c, newReq(t, "POST", px.url("/early"), body))
				if res.StatusCode != 200 || got != strconv.Itoa(len(body)) {
					t.Fatalf("request %d: %d %q, want 200 and the %d-byte body received", i, res.StatusCode, got, len(body))
				}
			}
		})
	}
}

func TestRateLimitedRetryBackOff(t *testing.T) {
	var first time.Time
	gap := make(chan time.Duration, 1)
	up, _ := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			first = time.Now()
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		gap <- time.Since(first)
		w.Write([]byte("ok"))
	})
	p := fastPolicy(config.RetryRetriableStatusCodes)
	p.RetriableStatusCodes = []uint32{429}
	p.RateLimitedBackOff = &config.RateLimitedBackOff{MaxInterval: 10 * time.Second, ResetHeaders: []config.ResetHeader{{Name: "Retry-After"}}}
	px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/limited"), ""))
	if res.StatusCode != 200 {
		t.Fatalf("status %d, want 200 after the rate-limited retry", res.StatusCode)
	}
	// Retry-After: 1 → between 1 s and 1.5 s (jitter), instead of the
	// 1-10 ms exponential back-off of the policy.
	if g := <-gap; g < time.Second || g > 3*time.Second {
		t.Errorf("retried %v after the 429, want Retry-After's 1 s (+ up to 50%%)", g)
	}
}

func TestRetriableHeaders(t *testing.T) {
	up, hits := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("X-Upstream-Busy", "yes")
		}
		w.Write([]byte("ok"))
	})
	p := fastPolicy(config.RetryRetriableHeaders)
	p.RetriableHeaders = []config.HeaderMatcher{{Name: "x-upstream-busy", Match: config.StringMatcher{Kind: config.MatchExact, Value: "yes"}}}
	px := startProxy(t, catchAll(retryRoute("c", p, 5*time.Second)), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/busy"), ""))
	if res.StatusCode != 200 || hits.Load() != 2 || res.Header.Get("X-Upstream-Busy") != "" {
		t.Errorf("status %d after %d attempts (busy header %q), want 200 after 2 without it", res.StatusCode, hits.Load(), res.Header.Get("X-Upstream-Busy"))
	}
}

func TestPerRequestBufferLimit(t *testing.T) {
	up, hits := counted(t, false, func(_ int32, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503)
	})
	tests := []struct {
		name         string
		route, vhost uint32
		body         int
		wantAttempts int32
	}{
		{"route limit: body within", 16, 0, 16, 2},
		{"route limit: body above is not retried", 16, 0, 17, 1},
		{"virtual host limit applies without a route limit", 0, 8, 9, 1},
		{"route limit wins over the virtual host's", 32, 8, 20, 2},
		{"listener limit still bounds", 4 << 20, 0, 70 << 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := retryRoute("c", fastPolicy(config.Retry5xx), 5*time.Second)
			rt.PerRequestBufferLimitBytes = tt.route
			rc := catchAll(rt)
			rc.VirtualHosts[0].PerRequestBufferLimitBytes = tt.vhost
			px := startProxy(t, rc, map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
			st := *px.handler.State()
			st.BufferLimit = 64 << 10
			px.handler.Swap(&st)
			hits.Store(0)
			get(t, client(t, false), newReq(t, "POST", px.url("/buf"), strings.Repeat("b", tt.body)))
			if hits.Load() != tt.wantAttempts {
				t.Errorf("%d attempts for a %d-byte body, want %d", hits.Load(), tt.body, tt.wantAttempts)
			}
		})
	}
}

func TestAttemptCountHeaders(t *testing.T) {
	seen := make(chan string, 4)
	up, _ := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Envoy-Attempt-Count")
		if n%2 == 1 { // the first attempt of each request
			w.WriteHeader(503)
		}
	})
	tests := []struct {
		name                   string
		inRequest, inResponse  bool
		wantUpstream, wantResp []string
	}{
		{"off by default", false, false, []string{"", ""}, nil},
		{"both", true, true, []string{"1", "2"}, []string{"2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := catchAll(retryRoute("c", fastPolicy(config.Retry5xx), 5*time.Second))
			rc.VirtualHosts[0].IncludeRequestAttemptCount = tt.inRequest
			rc.VirtualHosts[0].IncludeAttemptCountInResponse = tt.inResponse
			px := startProxy(t, rc, map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
			// A previous hop's value is overridden.
			res, _ := get(t, client(t, false), newReq(t, "GET", px.url("/count"), "", "X-Envoy-Attempt-Count", "7"))
			up := []string{<-seen, <-seen}
			if tt.inRequest && (up[0] != tt.wantUpstream[0] || up[1] != tt.wantUpstream[1]) {
				t.Errorf("upstream saw x-envoy-attempt-count %q, want %q", up, tt.wantUpstream)
			}
			if !tt.inRequest && up[0] != "7" {
				t.Errorf("upstream saw %q, want the client's value passed through", up[0])
			}
			if got := res.Header.Values("X-Envoy-Attempt-Count"); len(got) != len(tt.wantResp) || len(got) > 0 && got[0] != tt.wantResp[0] {
				t.Errorf("response x-envoy-attempt-count %q, want %q", got, tt.wantResp)
			}
		})
	}
}
