package outlier

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	d     *Detector
	hosts []*Host
	clock *fakeClock
	logs  *observer.ObservedLogs
	// changes counts OnChange calls.
	changes int
}

// newFixture builds a detector over n hosts; edit tweaks Envoy's defaults.
// draw is what the injected Rand returns (0 ejects whenever enforcing > 0).
func newFixture(t *testing.T, n int, draw int, edit func(*config.OutlierDetection)) *fixture {
	t.Helper()
	cfg := Defaults()
	if edit != nil {
		edit(&cfg)
	}
	core, logs := observer.New(zap.InfoLevel)
	f := &fixture{clock: newFakeClock(), logs: logs}
	f.d = New(&cfg, Options{
		Cluster: "api", Log: zap.New(core), Clock: f.clock,
		Rand:     func(n int) int { return min(draw, n-1) },
		OnChange: func() { f.changes++ },
	})
	for i := range n {
		f.hosts = append(f.hosts, &Host{Address: "10.0.0." + string(rune('1'+i)) + ":80"})
	}
	f.d.SetHosts(f.hosts)
	return f
}

func (f *fixture) responses(h *Host, code, n int) {
	for range n {
		h.Response(code)
	}
}

func (f *fixture) ejected() []bool {
	out := make([]bool, len(f.hosts))
	for i, h := range f.hosts {
		out[i] = h.Ejected()
	}
	return out
}

func TestConsecutive(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(*config.OutlierDetection)
		report func(h *Host)
		want   bool
		reason Reason
	}{
		{name: "five 5xx in a row eject", report: func(h *Host) {
			for range 5 {
				h.Response(500)
			}
		}, want: true, reason: Consecutive5xx},
		{name: "four 5xx do not", report: func(h *Host) {
			for range 4 {
				h.Response(500)
			}
		}},
		{name: "a success breaks the run", report: func(h *Host) {
			for i := range 9 {
				if i == 4 {
					h.Response(200)
					continue
				}
				h.Response(503)
			}
		}},
		{name: "4xx is a success for outlier detection", report: func(h *Host) {
			for i := range 6 {
				if i == 3 {
					h.Response(404)
					continue
				}
				h.Response(500)
			}
		}},
		{name: "gateway failures are not enforced by default", edit: func(c *config.OutlierDetection) {
			c.Consecutive5xx = 100
		}, report: func(h *Host) {
			for range 10 {
				h.Response(502)
			}
		}},
		{name: "gateway failures eject when enforced", edit: func(c *config.OutlierDetection) {
			c.Consecutive5xx = 100
			c.EnforcingConsecutiveGatewayFailure = 100
		}, report: func(h *Host) {
			for range 5 {
				h.Response(504)
			}
		}, want: true, reason: ConsecutiveGatewayFailure},
		{name: "a 500 breaks a gateway-failure run", edit: func(c *config.OutlierDetection) {
			c.Consecutive5xx = 100
			c.EnforcingConsecutiveGatewayFailure = 100
		}, report: func(h *Host) {
			for i := range 8 {
				if i == 4 {
					h.Response(500)
					continue
				}
				h.Response(502)
			}
		}},
		{name: "enforcing 0 detects but does not eject", edit: func(c *config.OutlierDetection) {
			c.EnforcingConsecutive5xx = 0
		}, report: func(h *Host) {
			for range 5 {
				h.Response(500)
			}
		}},
		{name: "not split: connect failures count as 503", report: func(h *Host) {
			for range 5 {
				h.LocalFailure(false)
			}
		}, want: true, reason: Consecutive5xx},
		{name: "not split: timeouts count as 504 gateway failures", edit: func(c *config.OutlierDetection) {
			c.Consecutive5xx = 100
			c.EnforcingConsecutiveGatewayFailure = 100
		}, report: func(h *Host) {
			for range 5 {
				h.LocalFailure(true)
			}
		}, want: true, reason: ConsecutiveGatewayFailure},
		{name: "split: local failures eject as local origin", edit: func(c *config.OutlierDetection) {
			c.SplitExternalLocalOriginErrors = true
		}, report: func(h *Host) {
			for range 3 {
				h.LocalFailure(false)
			}
			for range 2 {
				h.LocalFailure(true)
			}
		}, want: true, reason: ConsecutiveLocalOriginFailure},
		{name: "split: local failures do not count as 5xx", edit: func(c *config.OutlierDetection) {
			c.SplitExternalLocalOriginErrors = true
			c.ConsecutiveLocalOriginFailure = 100
		}, report: func(h *Host) {
			for range 10 {
				h.LocalFailure(false)
			}
		}},
		{name: "split: a response resets the local-origin run", edit: func(c *config.OutlierDetection) {
			c.SplitExternalLocalOriginErrors = true
		}, report: func(h *Host) {
			for i := range 9 {
				if i == 4 {
					h.Response(500)
					continue
				}
				h.LocalFailure(false)
			}
		}},
		{name: "split: a local success resets the local-origin run", edit: func(c *config.OutlierDetection) {
			c.SplitExternalLocalOriginErrors = true
		}, report: func(h *Host) {
			for i := range 9 {
				if i == 4 {
					h.LocalSuccess()
					continue
				}
				h.LocalFailure(true)
			}
		}},
		{name: "split: 5xx still eject as consecutive_5xx", edit: func(c *config.OutlierDetection) {
			c.SplitExternalLocalOriginErrors = true
		}, report: func(h *Host) {
			for range 5 {
				h.Response(503)
				h.LocalFailure(false) // interleaved local failures do not break it
			}
		}, want: true, reason: Consecutive5xx},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 10, 0, tc.edit)
			tc.report(f.hosts[3])
			f.d.Process()
			want := make([]bool, 10)
			want[3] = tc.want
			if diff := cmp.Diff(want, f.ejected()); diff != "" {
				t.Fatalf("ejected (-want +got):\n%s", diff)
			}
			if !tc.want {
				return
			}
			if got := f.hosts[3].LastEjection().Reason; got != tc.reason {
				t.Errorf("reason = %s, want %s", got, tc.reason)
			}
			if f.changes != 1 {
				t.Errorf("OnChange called %d times, want 1", f.changes)
			}
			entries := f.logs.FilterMessage("host ejected").AllUntimed()
			if len(entries) != 1 {
				t.Fatalf("%d ejection log events, want 1", len(entries))
			}
			got := entries[0].ContextMap()
			wantFields := map[string]any{
				"cluster": "api", "host": f.hosts[3].Address, "reason": tc.reason.String(),
				"ejection_count": uint32(1), "duration": 30 * time.Second,
			}
			if diff := cmp.Diff(wantFields, got); diff != "" {
				t.Errorf("log fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEnforcingPercentage(t *testing.T) {
	for _, tc := range []struct {
		name string
		draw int
		want bool
	}{
		{name: "draw below enforcing ejects", draw: 39, want: true},
		{name: "draw at enforcing does not", draw: 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 10, tc.draw, func(c *config.OutlierDetection) { c.EnforcingConsecutive5xx = 40 })
			f.responses(f.hosts[0], 500, 5)
			f.d.Process()
			if got := f.hosts[0].Ejected(); got != tc.want {
				t.Errorf("ejected = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEjectionTime: base × multiplier, capped at max_ejection_time,
// returned only at an interval sweep, multiplier decremented by healthy
// intervals.
func TestEjectionTime(t *testing.T) {
	f := newFixture(t, 10, 0, func(c *config.OutlierDetection) {
		c.BaseEjectionTime = 30 * time.Second
		c.MaxEjectionTime = 70 * time.Second
	})
	h := f.hosts[0]
	eject := func() {
		t.Helper()
		f.responses(h, 500, 5)
		f.d.Process()
		if !h.Ejected() {
			t.Fatal("not ejected")
		}
	}
	// ejectedFor sweeps until the host returns and says how long it took.
	ejectedFor := func() time.Duration {
		t.Helper()
		start := f.clock.Now()
		for range 100 {
			f.clock.Advance(time.Second)
			f.d.Sweep()
			if !h.Ejected() {
				return f.clock.Now().Sub(start)
			}
		}
		t.Fatal("never returned")
		return 0
	}
	var got []time.Duration
	for range 4 {
		eject()
		got = append(got, ejectedFor())
	}
	// 30 s, 60 s, then capped at 70 s (Envoy: min(base × n, max)).
	want := []time.Duration{30 * time.Second, 60 * time.Second, 70 * time.Second, 70 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("ejection durations (-want +got):\n%s", diff)
	}
	if c := h.LastEjection().Count; c != 4 {
		t.Errorf("ejection count = %d, want 4", c)
	}
	// The multiplier is 4 now (Envoy lets it grow one step past the
	// maximum: 3 × 30 s < 70 s + 30 s); three healthy sweeps bring it to
	// 1, so the next ejection lasts 2 × base, and after four more the
	// base time again.
	for range 3 {
		f.clock.Advance(10 * time.Second)
		f.d.Sweep()
	}
	eject()
	if got := ejectedFor(); got != 60*time.Second {
		t.Errorf("after 3 healthy intervals: ejected for %s, want 60s", got)
	}
	for range 4 {
		f.clock.Advance(10 * time.Second)
		f.d.Sweep()
	}
	eject()
	if got := ejectedFor(); got != 30*time.Second {
		t.Errorf("after healthy intervals: ejected for %s, want 30s", got)
	}
	if n := len(f.logs.FilterMessage("host returned to service").AllUntimed()); n != 6 {
		t.Errorf("%d return log events, want 6", n)
	}
}

func TestEjectionJitter(t *testing.T) {
	f := newFixture(t, 10, 7_000_000_000, func(c *config.OutlierDetection) {
		c.MaxEjectionTimeJitter = 10 * time.Second
	})
	f.responses(f.hosts[0], 500, 5)
	f.d.Process()
	e := f.hosts[0].LastEjection()
	if got := e.Until.Sub(e.At); got != 37*time.Second {
		t.Errorf("ejection = %s, want 30s + 7s jitter", got)
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	tests := []struct {
		name    string
		hosts   int
		percent uint32
		want    int
	}{
		{name: "default 10% of 10 hosts", hosts: 10, percent: 10, want: 1},
		{name: "10% of 3 hosts still ejects one", hosts: 3, percent: 10, want: 1},
		{name: "0% ejects none", hosts: 5, percent: 0, want: 0},
		{name: "50% of 4 hosts", hosts: 4, percent: 50, want: 2},
		{name: "100% ejects all", hosts: 3, percent: 100, want: 3},
		{name: "10% of 20 hosts", hosts: 20, percent: 10, want: 2},
		{name: "50% of 3 hosts: the last ejection crosses 50%", hosts: 3, percent: 50, want: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.hosts, 0, func(c *config.OutlierDetection) { c.MaxEjectionPercent = tc.percent })
			for _, h := range f.hosts {
				f.responses(h, 500, 5)
			}
			f.d.Process()
			if got := f.d.Ejected(); got != tc.want {
				t.Errorf("ejected %d hosts, want %d", got, tc.want)
			}
			if got, want := f.d.Overflows(), uint64(tc.hosts-tc.want); got != want {
				t.Errorf("overflows = %d, want %d", got, want)
			}
		})
	}
}

// TestIntervalRates runs one simulated interval of traffic and sweeps.
func TestIntervalRates(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.OutlierDetection)
		// per host: successes, failures
		traffic [][2]int
		want    []bool
		reason  Reason
	}{
		{
			name:    "success rate below mean − 1.9 stdev",
			traffic: [][2]int{{100, 0}, {100, 0}, {100, 0}, {100, 0}, {50, 50}},
			want:    []bool{false, false, false, false, true}, reason: SuccessRate,
		},
		{
			name:    "success rate needs the request volume",
			traffic: [][2]int{{99, 0}, {99, 0}, {99, 0}, {99, 0}, {49, 50}},
			want:    make([]bool, 5),
		},
		{
			name:    "success rate needs minimum hosts",
			traffic: [][2]int{{100, 0}, {100, 0}, {100, 0}, {50, 50}},
			want:    make([]bool, 4),
		},
		{
			name:    "a narrow spread is not an outlier",
			traffic: [][2]int{{100, 0}, {100, 0}, {99, 1}, {100, 0}, {99, 1}, {99, 1}},
			edit:    func(c *config.OutlierDetection) { c.MaxEjectionPercent = 100 },
			want:    make([]bool, 6),
		},
		{
			name: "failure percentage not enforced by default",
			edit: func(c *config.OutlierDetection) {
				c.EnforcingSuccessRate = 0
			},
			traffic: [][2]int{{50, 0}, {50, 0}, {50, 0}, {50, 0}, {5, 45}},
			want:    make([]bool, 5),
		},
		{
			name: "failure percentage at the threshold",
			edit: func(c *config.OutlierDetection) {
				c.EnforcingSuccessRate = 0
				c.EnforcingFailurePercentage = 100
				c.MaxEjectionPercent = 100
			},
			traffic: [][2]int{{50, 0}, {50, 0}, {50, 0}, {50, 0}, {5, 45}, {10, 40}},
			want:    []bool{false, false, false, false, true, false}, reason: FailurePercentage,
		},
		{
			name: "failure percentage needs the request volume",
			edit: func(c *config.OutlierDetection) {
				c.EnforcingFailurePercentage = 100
			},
			traffic: [][2]int{{49, 0}, {49, 0}, {49, 0}, {49, 0}, {0, 49}},
			want:    make([]bool, 5),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, len(tc.traffic), 0, func(c *config.OutlierDetection) {
				c.Consecutive5xx = 1000
				if tc.edit != nil {
					tc.edit(c)
				}
			})
			for i, tr := range tc.traffic {
				// Interleave so that no consecutive run forms.
				for j := range max(tr[0], tr[1]) {
					if j < tr[0] {
						f.hosts[i].Response(200)
					}
					if j < tr[1] {
						f.hosts[i].Response(500)
					}
				}
			}
			f.d.Process()
			f.clock.Advance(10 * time.Second)
			f.d.Sweep()
			if diff := cmp.Diff(tc.want, f.ejected()); diff != "" {
				t.Fatalf("ejected (-want +got):\n%s", diff)
			}
			for i, h := range f.hosts {
				if tc.want[i] && h.LastEjection().Reason != tc.reason {
					t.Errorf("host %d reason = %s, want %s", i, h.LastEjection().Reason, tc.reason)
				}
			}
			// The next interval starts empty: nothing more is ejected.
			f.clock.Advance(10 * time.Second)
			f.d.Sweep()
			if diff := cmp.Diff(tc.want, f.ejected()); diff != "" {
				t.Errorf("after an empty interval (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSetHostsCarriesState(t *testing.T) {
	f := newFixture(t, 3, 0, nil)
	f.responses(f.hosts[0], 500, 5)
	f.d.Process()
	extra := &Host{Address: "10.0.0.9:80"}
	f.d.SetHosts([]*Host{f.hosts[0], f.hosts[2], extra})
	if !f.hosts[0].Ejected() || f.d.Ejected() != 1 {
		t.Fatalf("ejection lost across SetHosts")
	}
	// Removed hosts stop reporting; new ones start.
	f.responses(f.hosts[1], 500, 5)
	f.responses(extra, 500, 5)
	f.d.SetConfig(func() *config.OutlierDetection { c := Defaults(); c.MaxEjectionPercent = 100; return &c }())
	f.d.Process()
	if f.hosts[1].Ejected() || !extra.Ejected() {
		t.Errorf("removed ejected = %v, new ejected = %v; want false, true", f.hosts[1].Ejected(), extra.Ejected())
	}
	f.d.Release()
	if f.hosts[0].Ejected() || extra.Ejected() {
		t.Error("Release left hosts ejected")
	}
}

// TestRun: the goroutine ejects as soon as a run completes (not at the
// interval), sweeps at the interval, and ends with its context.
func TestRun(t *testing.T) {
	cfg := Defaults()
	cfg.Interval = 10 * time.Millisecond
	cfg.BaseEjectionTime = 30 * time.Millisecond
	changed := make(chan struct{}, 16)
	d := New(&cfg, Options{Cluster: "api", OnChange: func() { changed <- struct{}{} }})
	h := &Host{Address: "10.0.0.1:80"}
	d.SetHosts([]*Host{h})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	wait := func(what string, want bool) {
		t.Helper()
		for h.Ejected() != want {
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("no %s before the deadline", what)
			}
		}
	}
	for range 5 {
		h.Response(502)
	}
	wait("ejection", true)
	wait("return", false)
	cancel()
	select {
	case <-done:
	case <-deadline.C:
		t.Fatal("Run did not end with its context")
	}
}
