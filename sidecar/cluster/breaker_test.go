package cluster

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestCircuitBreakerRetries(t *testing.T) {
	tests := []struct {
		name   string
		cb     config.CircuitBreakers
		active int // requests in flight
		want   int // retries admitted
	}{
		{name: "default max_retries 3", want: 3},
		{name: "max_retries 1", cb: config.CircuitBreakers{MaxRetries: 1}, want: 1},
		{name: "budget: min_retry_concurrency when idle",
			cb: config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}}, want: 3},
		{name: "budget: 20% of 50 active requests",
			cb: config.CircuitBreakers{RetryBudget: &config.RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}}, active: 50, want: 10},
		{name: "budget replaces max_retries",
			cb: config.CircuitBreakers{MaxRetries: 100, RetryBudget: &config.RetryBudget{BudgetPercent: 50, MinRetryConcurrency: 1}}, active: 4, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", CircuitBreakers: tc.cb, Endpoints: endpoints(1)})
			for range tc.active {
				if !c.TryRequest() {
					t.Fatal("TryRequest failed")
				}
			}
			got := 0
			for c.TryRetry() {
				got++
				if got > 1000 {
					t.Fatal("no retry limit")
				}
			}
			if got != tc.want {
				t.Errorf("admitted %d retries, want %d", got, tc.want)
			}
			c.DoneRetry()
			if !c.TryRetry() {
				t.Error("TryRetry after DoneRetry failed")
			}
			if n := c.state.overflow[BreakerRetries].Load(); n != 1 {
				t.Errorf("retry overflows = %d, want 1", n)
			}
		})
	}
}

// TestCircuitBreakerConnections: at max_connections a request needing a
// connection waits as pending and gets the first connection freed; past
// max_pending_requests, and after the connect timeout, RoundTrip fails
// with an OverflowError.
func TestCircuitBreakerConnections(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	s := NewSet(zap.NewNop())
	defer s.Close()
	cfg := &config.Cluster{
		Name: "c", ConnectTimeout: 300 * time.Millisecond,
		CircuitBreakers: config.CircuitBreakers{MaxConnections: 1, MaxPendingRequests: 1},
		Endpoints:       []config.Endpoint{{Address: addr, Weight: 1}},
	}
	c := s.Update(map[string]*config.Cluster{"c": cfg})["c"]
	h := c.Pick(0, false)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	get := func(path string) (string, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+path, nil)
		res, err := h.Transport().RoundTrip(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	type result struct {
		body string
		err  error
	}
	first, second := make(chan result, 1), make(chan result, 1)
	go func() { b, err := get("/slow"); first <- result{b, err} }()
	waitFor(ctx, t, "first connection", func() bool { return c.state.conns.Load() == 1 })
	go func() { b, err := get("/"); second <- result{b, err} }()
	waitFor(ctx, t, "pending request", func() bool { return c.state.pending.Load() == 1 })

	_, err := get("/")
	var oe *OverflowError
	if !errors.As(err, &oe) || oe.Breaker != BreakerPending {
		t.Fatalf("third request: err = %v, want a max_pending_requests overflow", err)
	}
	close(release)
	for _, ch := range []chan result{first, second} {
		if r := <-ch; r.err != nil || r.body != "ok" {
			t.Fatalf("queued requests: %q, %v; want ok", r.body, r.err)
		}
	}
	if n := h.connections.Load(); n > 1 {
		t.Errorf("%d connections open, max_connections is 1", n)
	}

	if n := c.state.pending.Load(); n != 0 {
		t.Errorf("pending = %d after the queued request got its connection, want 0", n)
	}
	// The dial the queued request started is no longer needed; it gives
	// up after the connect timeout (one max_connections overflow). Wait
	// for the overflow itself: on a loaded machine the dial may not even
	// have started waiting yet, and it must not take the slot freed below.
	waitFor(ctx, t, "stale dial to give up", func() bool {
		return c.state.overflow[BreakerConnections].Load() == 1 && c.state.dialWaiters.Load() == 0
	})

	// The pooled connection holds the only slot: the TCP proxy's dial
	// overflows at once.
	if _, err := h.Dial(ctx); !errors.As(err, &oe) || oe.Breaker != BreakerConnections {
		t.Fatalf("raw dial at max_connections: err = %v, want a max_connections overflow", err)
	}
	// Replace the pooled connection by one the pool cannot reuse: a
	// request then waits for a slot for the connect timeout and overflows.
	h.closeIdle()
	waitFor(ctx, t, "pool closed", func() bool { return c.state.conns.Load() == 0 })
	conn, err := h.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = get("/")
	if !errors.As(err, &oe) || oe.Breaker != BreakerConnections {
		t.Fatalf("request at max_connections: err = %v, want a max_connections overflow", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("overflowed after %v, want to wait the connect timeout", d)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	for _, m := range []struct {
		name, breaker string
		want          float64
	}{
		{"consulate_sidecar_cluster_circuit_breaker_overflow_total", "max_pending_requests", 1},
		{"consulate_sidecar_cluster_circuit_breaker_overflow_total", "max_connections", 3},
		{"consulate_sidecar_cluster_circuit_breaker_overflow_total", "max_requests", 0},
		{"consulate_sidecar_cluster_circuit_breaker_in_use", "max_connections", 1},
		{"consulate_sidecar_cluster_circuit_breaker_remaining", "max_connections", 0},
		{"consulate_sidecar_cluster_circuit_breaker_remaining", "max_requests", 1024},
		{"consulate_sidecar_cluster_circuit_breaker_remaining", "max_retries", 3},
	} {
		if got := metricValue(t, reg, m.name, map[string]string{"cluster": "c", "breaker": m.breaker}); got != m.want {
			t.Errorf("%s{breaker=%s} = %v, want %v", m.name, m.breaker, got, m.want)
		}
	}
}

func TestCircuitBreakerRequestsOverflowCounted(t *testing.T) {
	c := build(t, &config.Cluster{Name: "c", CircuitBreakers: config.CircuitBreakers{MaxRequests: 1}, Endpoints: endpoints(1)})
	if !c.TryRequest() || c.TryRequest() {
		t.Fatal("max_requests 1 not enforced")
	}
	c.DoneRequest()
	if n := c.state.overflow[BreakerRequests].Load(); n != 1 {
		t.Errorf("overflows = %d, want 1", n)
	}
}

// TestTCPDialCountsConnections: the TCP proxy's Dial is under the same
// max_connections as the pool.
func TestTCPDialCountsConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := build(t, &config.Cluster{
		Name: "c", ConnectTimeout: 50 * time.Millisecond,
		CircuitBreakers: config.CircuitBreakers{MaxConnections: 2},
		Endpoints:       []config.Endpoint{{Address: ln.Addr().String(), Weight: 1}},
	})
	h := c.Pick(0, false)
	a, err := h.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Dial(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Dial(t.Context()); !IsOverflow(err) {
		t.Fatalf("third dial: err = %v, want overflow", err)
	}
	a.Close()
	a.Close() // counted once
	d, err := h.Dial(t.Context())
	if err != nil {
		t.Fatalf("dial after close: %v", err)
	}
	b.Close()
	d.Close()
	if n := c.state.conns.Load(); n != 0 {
		t.Errorf("cluster connections = %d after closing all, want 0", n)
	}
}
