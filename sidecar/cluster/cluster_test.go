package cluster

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func endpoints(weights ...uint32) []config.Endpoint {
	var eps []config.Endpoint
	for i, w := range weights {
		eps = append(eps, config.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w})
	}
	return eps
}

func build(t testing.TB, cfg *config.Cluster) *Cluster {
	t.Helper()
	s := NewSet(zap.NewNop())
	t.Cleanup(s.Close)
	return s.Update(map[string]*config.Cluster{cfg.Name: cfg})[cfg.Name]
}

func counts(c *Cluster, n int, hash func(i int) (uint64, bool)) map[string]int {
	out := map[string]int{}
	for i := range n {
		h, ok := hash(i)
		out[c.Pick(h, ok).Address]++
	}
	return out
}

func noHash(int) (uint64, bool) { return 0, false }

// within checks every share against its expected fraction of n.
func within(t *testing.T, got map[string]int, want map[string]float64, n int, tol float64) {
	t.Helper()
	for addr, frac := range want {
		share := float64(got[addr]) / float64(n)
		if math.Abs(share-frac) > tol {
			t.Errorf("%s: share %.3f, want %.3f±%.3f (counts %v)", addr, share, frac, tol, got)
		}
	}
	for addr := range got {
		if _, ok := want[addr]; !ok {
			t.Errorf("unexpected host %s picked %d times", addr, got[addr])
		}
	}
}

func TestDistribution(t *testing.T) {
	weights := map[string]float64{"10.0.0.1:80": 1.0 / 6, "10.0.0.2:80": 2.0 / 6, "10.0.0.3:80": 3.0 / 6}
	equal := map[string]float64{"10.0.0.1:80": 1.0 / 3, "10.0.0.2:80": 1.0 / 3, "10.0.0.3:80": 1.0 / 3}
	const n = 60000
	tests := []struct {
		name string
		lb   config.LBPolicy
		want map[string]float64
		tol  float64
		hash func(int) (uint64, bool)
	}{
		{name: "round_robin", lb: config.RoundRobin, want: weights, tol: 0.001, hash: noHash},
		{name: "least_request", lb: config.LeastRequest, want: weights, tol: 0.02, hash: noHash},
		{name: "random", lb: config.Random, want: equal, tol: 0.02, hash: noHash},
		{name: "ring_hash", lb: config.RingHash, want: weights, tol: 0.05, hash: func(i int) (uint64, bool) { return HashString(fmt.Sprint("user-", i)), true }},
		{name: "maglev", lb: config.Maglev, want: weights, tol: 0.02, hash: func(i int) (uint64, bool) { return HashString(fmt.Sprint("user-", i)), true }},
		{name: "ring_hash without a hash is random", lb: config.RingHash, want: equal, tol: 0.02, hash: noHash},
		{name: "maglev without a hash is random", lb: config.Maglev, want: equal, tol: 0.02, hash: noHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", LBPolicy: tc.lb, Endpoints: endpoints(1, 2, 3)})
			within(t, counts(c, n, tc.hash), tc.want, n, tc.tol)
		})
	}
}

func TestRoundRobinIsSmooth(t *testing.T) {
	c := build(t, &config.Cluster{Name: "c", Endpoints: endpoints(5, 1, 1)})
	// In any window of 7 consecutive picks each host appears exactly its weight.
	var seq []string
	for range 21 {
		seq = append(seq, c.Pick(0, false).Address)
	}
	for start := 0; start+7 <= len(seq); start++ {
		got := map[string]int{}
		for _, a := range seq[start : start+7] {
			got[a]++
		}
		if diff := cmp.Diff(map[string]int{"10.0.0.1:80": 5, "10.0.0.2:80": 1, "10.0.0.3:80": 1}, got); diff != "" {
			t.Fatalf("window %d of %v (-want +got):\n%s", start, seq, diff)
		}
	}
	// Smooth: nginx's sequence for 5,1,1 is a a b a c a a, so the heavy host
	// runs at most 4 times in a row across the wrap, never 5.
	run := 0
	for _, a := range seq {
		if a == "10.0.0.1:80" {
			run++
			if run > 4 {
				t.Fatalf("not smooth: %v", seq)
			}
		} else {
			run = 0
		}
	}
}

func TestRoundRobinManyHosts(t *testing.T) {
	var ws []uint32
	for i := range 2000 {
		ws = append(ws, uint32(1+i%4))
	}
	eps := endpoints(ws...)
	start := time.Now()
	c := build(t, &config.Cluster{Name: "c", Endpoints: eps})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("building round robin over 2000 hosts took %v", d)
	}
	// One full schedule: each host exactly its weight.
	got := map[string]int{}
	for range 5000 {
		got[c.Pick(0, false).Address]++
	}
	for i, w := range ws {
		if a := eps[i].Address; got[a] != int(w) {
			t.Fatalf("%s picked %d times in one cycle, want %d", a, got[a], w)
		}
	}
}

func TestHashStickiness(t *testing.T) {
	for _, lb := range []config.LBPolicy{config.RingHash, config.Maglev} {
		t.Run(fmt.Sprint(lb), func(t *testing.T) {
			cfg := &config.Cluster{Name: "c", LBPolicy: lb, Endpoints: endpoints(1, 1, 1, 1, 1)}
			c := build(t, cfg)
			first := map[int]string{}
			for i := range 1000 {
				first[i] = c.Pick(HashString(fmt.Sprint("k", i)), true).Address
			}
			for i := range 1000 {
				if got := c.Pick(HashString(fmt.Sprint("k", i)), true).Address; got != first[i] {
					t.Fatalf("key %d moved from %s to %s", i, first[i], got)
				}
			}
			// Removing one host of five moves few keys of the others (a
			// modulo hash would move ~80%; ring hash resizes the survivors'
			// share of the ring as Envoy does, so some keys do move).
			smaller := &config.Cluster{Name: "c", LBPolicy: lb, Endpoints: endpoints(1, 1, 1, 1, 1)[:4]}
			c2 := build(t, smaller)
			moved := 0
			for i := range 1000 {
				if first[i] == "10.0.0.5:80" {
					continue
				}
				if c2.Pick(HashString(fmt.Sprint("k", i)), true).Address != first[i] {
					moved++
				}
			}
			if moved > 200 {
				t.Errorf("%d of the keys of surviving hosts moved, want few", moved)
			}
		})
	}
}

func TestLeastRequestPrefersIdleHost(t *testing.T) {
	c := build(t, &config.Cluster{Name: "c", LBPolicy: config.LeastRequest, LeastRequestChoiceCount: 2, Endpoints: endpoints(1, 1)})
	busy := c.hosts[0]
	for range 10 {
		busy.Begin()
	}
	defer func() {
		for range 10 {
			busy.End()
		}
	}()
	got := counts(c, 1000, noHash)
	// P2C picks the busy host only when both choices land on it (1/4).
	if got[busy.Address] > 330 {
		t.Errorf("busy host picked %d of 1000 times: %v", got[busy.Address], got)
	}
	w := build(t, &config.Cluster{Name: "w", LBPolicy: config.LeastRequest, Endpoints: endpoints(1, 3)})
	for range 8 {
		w.hosts[1].Begin() // weight 3 / (8+1) < weight 1 / 1
	}
	defer func() {
		for range 8 {
			w.hosts[1].End()
		}
	}()
	got = counts(w, 4000, noHash)
	if got[w.hosts[0].Address] < got[w.hosts[1].Address] {
		t.Errorf("weighted least request preferred the busy host: %v", got)
	}
}

func TestHostSelection(t *testing.T) {
	ep := func(addr string, h config.HealthStatus, prio uint32) config.Endpoint {
		return config.Endpoint{Address: addr, Weight: 1, Health: h, Priority: prio}
	}
	tests := []struct {
		name      string
		panicPct  float64
		endpoints []config.Endpoint
		want      []string
	}{
		{
			name:     "unhealthy draining timeout excluded, unknown used",
			panicPct: 0,
			endpoints: []config.Endpoint{ep("a:1", config.HealthUnknown, 0), ep("b:1", config.HealthHealthy, 0),
				ep("c:1", config.HealthUnhealthy, 0), ep("d:1", config.HealthDraining, 0), ep("e:1", config.HealthTimeout, 0)},
			want: []string{"a:1", "b:1"},
		},
		{
			name:      "panic threshold uses all hosts",
			panicPct:  50,
			endpoints: []config.Endpoint{ep("a:1", config.HealthHealthy, 0), ep("b:1", config.HealthUnhealthy, 0), ep("c:1", config.HealthUnhealthy, 0)},
			want:      []string{"a:1", "b:1", "c:1"},
		},
		{
			name:      "all unhealthy, panic disabled: nothing available",
			panicPct:  0,
			endpoints: []config.Endpoint{ep("a:1", config.HealthUnhealthy, 0), ep("b:1", config.HealthDraining, 0)},
			want:      nil,
		},
		{
			name:      "all unhealthy with the default threshold: panic",
			panicPct:  50,
			endpoints: []config.Endpoint{ep("a:1", config.HealthUnhealthy, 0), ep("b:1", config.HealthDraining, 0)},
			want:      []string{"a:1", "b:1"},
		},
		{
			name:      "at the threshold no panic",
			panicPct:  50,
			endpoints: []config.Endpoint{ep("a:1", config.HealthHealthy, 0), ep("b:1", config.HealthUnhealthy, 0)},
			want:      []string{"a:1"},
		},
		{
			name:      "degraded only when nothing is healthy",
			panicPct:  0,
			endpoints: []config.Endpoint{ep("a:1", config.HealthDegraded, 0), ep("b:1", config.HealthUnhealthy, 0)},
			want:      []string{"a:1"},
		},
		{
			name:      "lower priority first, spill when none available",
			panicPct:  0,
			endpoints: []config.Endpoint{ep("a:1", config.HealthUnhealthy, 0), ep("b:1", config.HealthHealthy, 1), ep("c:1", config.HealthHealthy, 2)},
			want:      []string{"b:1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", HealthyPanicThreshold: tc.panicPct, Endpoints: tc.endpoints})
			var got []string
			for i, ok := range c.lb.Load().picked {
				if ok {
					got = append(got, c.hosts[i].Address)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("available hosts (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetCarriesLiveState(t *testing.T) {
	s := NewSet(zap.NewNop())
	defer s.Close()
	a := &config.Cluster{Name: "a", Endpoints: endpoints(1, 1)}
	b := &config.Cluster{Name: "b", Endpoints: endpoints(1)}
	snap1 := s.Update(map[string]*config.Cluster{"a": a, "b": b})
	snap1["a"].hosts[0].Begin()
	if !snap1["b"].Acquire() {
		t.Fatal("Acquire failed")
	}

	// Same content, new pointers: the cluster is reused as is.
	a2 := &config.Cluster{Name: "a", Endpoints: endpoints(1, 1)}
	// b changes (a third endpoint): hosts and counters carry over.
	b2 := &config.Cluster{Name: "b", Endpoints: endpoints(1, 1, 1)}
	snap2 := s.Update(map[string]*config.Cluster{"a": a2, "b": b2})
	if snap2["a"] != snap1["a"] {
		t.Error("unchanged cluster a was rebuilt")
	}
	if snap2["b"] == snap1["b"] {
		t.Fatal("changed cluster b was not rebuilt")
	}
	if snap2["b"].hosts[0] != snap1["b"].hosts[0] {
		t.Error("host of changed cluster b lost its live state")
	}
	if got := snap2["b"].state.active.Load(); got != 1 {
		t.Errorf("b in-flight requests after the swap = %d, want 1", got)
	}
	snap1["b"].Release()
	if got := snap2["b"].state.active.Load(); got != 0 {
		t.Errorf("b in-flight after release on the old snapshot = %d, want 0", got)
	}
	st := s.Status()
	if len(st) != 5 || st[0].Cluster != "a" || st[0].ActiveRequests != 1 || st[0].TotalRequests != 1 {
		t.Errorf("Status = %+v", st)
	}
	snap1["a"].hosts[0].End()
}

func TestCircuitBreakerMaxRequests(t *testing.T) {
	c := build(t, &config.Cluster{Name: "c", CircuitBreakers: config.CircuitBreakers{MaxRequests: 2}, Endpoints: endpoints(1)})
	if !c.Acquire() || !c.Acquire() {
		t.Fatal("first two Acquire failed")
	}
	if c.Acquire() {
		t.Fatal("third Acquire succeeded over max_requests 2")
	}
	c.Release()
	if !c.Acquire() {
		t.Fatal("Acquire after Release failed")
	}
	c.Release()
	c.Release()
}

// TestCircuitBreakerExplicitZero: Envoy reads a threshold set to 0 as 0
// (max_retries: 0 forbids retries, max_requests: 0 admits nothing); only an
// unset threshold takes the default.
func TestCircuitBreakerExplicitZero(t *testing.T) {
	zero := build(t, &config.Cluster{Name: "zero", Endpoints: endpoints(1), CircuitBreakers: config.CircuitBreakers{
		Explicit: config.ThresholdRetries | config.ThresholdRequests}})
	if zero.TryRetry() {
		t.Error("TryRetry succeeded under max_retries: 0")
	}
	if zero.Acquire() {
		t.Error("Acquire succeeded under max_requests: 0")
	}
	unset := build(t, &config.Cluster{Name: "unset", Endpoints: endpoints(1)})
	for i := range 3 {
		if !unset.TryRetry() {
			t.Fatalf("retry %d refused under the default max_retries of 3", i+1)
		}
	}
	if unset.TryRetry() {
		t.Error("a fourth concurrent retry passed the default max_retries of 3")
	}
	for range 3 {
		unset.DoneRetry()
	}
}

func TestPools(t *testing.T) {
	h1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) }))
	defer h1.Close()
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) }))
	h2.Config.Protocols = new(http.Protocols)
	h2.Config.Protocols.SetUnencryptedHTTP2(true)
	h2.Start()
	defer h2.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	tests := []struct {
		name     string
		addr     string
		proto    config.Protocol
		want     string
		connFail bool
	}{
		{name: "http1 keep-alive", addr: h1.Listener.Addr().String(), proto: config.HTTP1, want: "HTTP/1.1"},
		{name: "h2c prior knowledge", addr: h2.Listener.Addr().String(), proto: config.HTTP2, want: "HTTP/2.0"},
		{name: "connect failure", addr: deadAddr, proto: config.HTTP1, connFail: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", Protocol: tc.proto, Endpoints: []config.Endpoint{{Address: tc.addr, Weight: 1}}})
			h := c.Pick(0, false)
			for range 3 {
				req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+tc.addr+"/", nil)
				res, err := h.Transport().RoundTrip(req)
				if tc.connFail {
					if !IsConnectError(err) {
						t.Fatalf("err = %v, want a ConnectError", err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				body := make([]byte, 64)
				n, _ := res.Body.Read(body)
				res.Body.Close()
				if got := string(body[:n]); got != tc.want {
					t.Errorf("upstream saw %q, want %q", got, tc.want)
				}
			}
			wantConns := int64(1)
			if tc.connFail {
				wantConns = 0
			}
			if got := h.connections.Load(); got != wantConns {
				t.Errorf("open connections = %d, want %d (pooled)", got, wantConns)
			}
			if tc.connFail && h.connFail.Load() != 3 {
				t.Errorf("connect failures = %d, want 3", h.connFail.Load())
			}
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	addr := fullBacklog(t)
	c := build(t, &config.Cluster{Name: "c", ConnectTimeout: 100 * time.Millisecond, Endpoints: []config.Endpoint{{Address: addr, Weight: 1}}})
	h := c.Pick(0, false)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := h.Dial(ctx)
	if !IsConnectError(err) {
		t.Fatalf("err = %v, want a ConnectError", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("dial took %v, want about connect_timeout (100ms)", d)
	}
}

// fullBacklog returns the address of a listening socket with backlog 0
// whose accept queue is already full, so new connects hang (Linux drops
// the SYN) until the dialer's timeout.
func fullBacklog(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for range 4 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}

func TestHTTP2PoolMultiplexes(t *testing.T) {
	var inflight, peak atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inflight.Add(-1)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	defer srv.Close()
	c := build(t, &config.Cluster{Name: "c", Protocol: config.HTTP2, Endpoints: []config.Endpoint{{Address: srv.Listener.Addr().String(), Weight: 1}}})
	h := c.Pick(0, false)
	// One request first, so the connection exists: on a cold pool Go's
	// HTTP/2 transport may dial twice when a burst races the first dial
	// (seen once under -race on a loaded machine); multiplexing is what
	// this test is about.
	func() {
		req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+h.Address+"/", nil)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if res, err := h.Transport().RoundTrip(req); err == nil {
				res.Body.Close()
			} else {
				t.Error(err)
			}
		}()
		release <- struct{}{} // the handler takes it once the request arrives
		<-done
	}()
	peak.Store(0)
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+h.Address+"/", nil)
			if res, err := h.Transport().RoundTrip(req); err == nil {
				res.Body.Close()
			} else {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for peak.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := h.connections.Load(); got != 1 {
		t.Errorf("%d concurrent requests opened %d connections, want 1 (multiplexed)", n, got)
	}
	close(release)
	wg.Wait()
	if peak.Load() != n {
		t.Errorf("peak concurrency %d, want %d", peak.Load(), n)
	}
}

func TestRetiredHostsArePruned(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	s := NewSet(zap.NewNop())
	defer s.Close()
	addr := srv.Listener.Addr().String()
	snap := s.Update(map[string]*config.Cluster{"c": {Name: "c", Endpoints: []config.Endpoint{{Address: addr, Weight: 1}}}})
	h := snap["c"].Pick(0, false)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+addr+"/", nil)
	res, err := h.Transport().RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// Endpoint churn: the host goes away; its idle pooled connection is
	// closed and the host forgotten.
	for i := range 50 {
		s.Update(map[string]*config.Cluster{"c": {Name: "c", Endpoints: []config.Endpoint{{Address: fmt.Sprintf("10.9.9.%d:80", i), Weight: 1}}}})
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.connections.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("retired host still has %d connections", h.connections.Load())
		}
		time.Sleep(time.Millisecond)
		s.Update(map[string]*config.Cluster{"c": {Name: "c", Endpoints: []config.Endpoint{{Address: "10.9.9.1:80", Weight: 1}}}})
	}
	if n := len(s.retired); n > 1 {
		t.Errorf("%d retired hosts kept, want them pruned", n)
	}
}

func TestPriorityLoad(t *testing.T) {
	ep := func(addr string, h config.HealthStatus, prio uint32) config.Endpoint {
		return config.Endpoint{Address: addr, Weight: 1, Health: h, Priority: prio}
	}
	const n = 20000
	tests := []struct {
		name      string
		endpoints []config.Endpoint
		want      map[string]float64
	}{
		{
			name:      "healthy P0 takes everything",
			endpoints: []config.Endpoint{ep("p0:1", config.HealthHealthy, 0), ep("p1:1", config.HealthHealthy, 1)},
			want:      map[string]float64{"p0:1": 1},
		},
		{
			// P0 health = min(100, 1.4 × 1/2) = 70: 70% stays, 30% spills.
			name: "half of P0 healthy spills 30% to P1",
			endpoints: []config.Endpoint{ep("p0:1", config.HealthHealthy, 0), ep("p0:2", config.HealthUnhealthy, 0),
				ep("p1:1", config.HealthHealthy, 1)},
			want: map[string]float64{"p0:1": 0.7, "p1:1": 0.3},
		},
		{
			// P0 health = min(100, 1.4 × 3/4) = 100: no spill.
			name: "three quarters of P0 healthy keeps all the load",
			endpoints: []config.Endpoint{ep("p0:1", config.HealthHealthy, 0), ep("p0:2", config.HealthHealthy, 0),
				ep("p0:3", config.HealthHealthy, 0), ep("p0:4", config.HealthUnhealthy, 0), ep("p1:1", config.HealthHealthy, 1)},
			want: map[string]float64{"p0:1": 1.0 / 3, "p0:2": 1.0 / 3, "p0:3": 1.0 / 3},
		},
		{
			// Health 0 and 35 → normalized 35 < 100: P1 (1 of 2 = 50%, not
			// below 50) takes all, healthy hosts only.
			name: "P0 down, P1 half healthy",
			endpoints: []config.Endpoint{ep("p0:1", config.HealthUnhealthy, 0), ep("p1:1", config.HealthHealthy, 1),
				ep("p1:2", config.HealthUnhealthy, 1)},
			want: map[string]float64{"p1:1": 1},
		},
		{
			// Every level below the threshold: total panic, load by host
			// count (2 of 3 to P0), all hosts used.
			name: "total panic splits by host count",
			endpoints: []config.Endpoint{ep("p0:1", config.HealthUnhealthy, 0), ep("p0:2", config.HealthUnhealthy, 0),
				ep("p1:1", config.HealthUnhealthy, 1)},
			want: map[string]float64{"p0:1": 0.335, "p0:2": 0.335, "p1:1": 0.33},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", HealthyPanicThreshold: 50, LBPolicy: config.Random, Endpoints: tc.endpoints})
			within(t, counts(c, n, noHash), tc.want, n, 0.02)
		})
	}
	t.Run("hash picks the level too", func(t *testing.T) {
		c := build(t, &config.Cluster{Name: "c", HealthyPanicThreshold: 50, LBPolicy: config.RingHash, Endpoints: []config.Endpoint{
			ep("p0:1", config.HealthHealthy, 0), ep("p0:2", config.HealthUnhealthy, 0), ep("p1:1", config.HealthHealthy, 1)}})
		for i := range 200 {
			h := HashString(fmt.Sprint("k", i))
			first := c.Pick(h, true)
			for range 3 {
				if got := c.Pick(h, true); got != first {
					t.Fatalf("key %d: %s then %s", i, first.Address, got.Address)
				}
			}
		}
	})
}

// TestSetKeepsHostsByAddress: across updates a host is found by address
// (linear search in small clusters, a map in large ones), and endpoints
// sharing an address share one host.
func TestSetKeepsHostsByAddress(t *testing.T) {
	for _, n := range []int{3, hostScan + 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			s := NewSet(zap.NewNop())
			defer s.Close()
			eps := func(order func(i int) int) []config.Endpoint {
				var out []config.Endpoint
				for i := range n {
					out = append(out, config.Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", order(i)), Weight: 1})
				}
				// The first address twice.
				return append(out, config.Endpoint{Address: out[0].Address, Weight: 1})
			}
			c1 := s.Update(map[string]*config.Cluster{"c": {Name: "c", Endpoints: eps(func(i int) int { return i })}})["c"]
			if c1.hosts[0] != c1.hosts[n] {
				t.Error("two endpoints with one address have two hosts")
			}
			if len(c1.state.hosts) != n {
				t.Errorf("%d distinct hosts, want %d", len(c1.state.hosts), n)
			}
			byAddr := map[string]*Host{}
			for _, h := range c1.hosts {
				byAddr[h.Address] = h
			}
			// Reversed, plus a weight change: rebuilt, every host kept.
			cfg2 := &config.Cluster{Name: "c", Endpoints: eps(func(i int) int { return n - 1 - i })}
			cfg2.Endpoints[1].Weight = 2
			c2 := s.Update(map[string]*config.Cluster{"c": cfg2})["c"]
			if c2 == c1 {
				t.Fatal("changed cluster not rebuilt")
			}
			for _, h := range c2.hosts {
				if byAddr[h.Address] != h {
					t.Errorf("host %s was not carried over", h.Address)
				}
			}
		})
	}
}
