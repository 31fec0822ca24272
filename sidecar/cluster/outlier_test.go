package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/outlier"
)

// manualDetectors makes the set start no detector goroutine: the test
// calls Process and Sweep itself.
func manualDetectors() Option { return func(s *Set) { s.manual = true } }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

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

func odConfig(edit func(*config.OutlierDetection)) *config.OutlierDetection {
	od := outlier.Defaults()
	if edit != nil {
		edit(&od)
	}
	return &od
}

// manualSet is a set whose detectors the test drives with clock.
func manualSet(t *testing.T) (*Set, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	s := NewSet(zap.NewNop(), WithClock(clock), manualDetectors())
	t.Cleanup(s.Close)
	return s, clock
}

func fail(h *Host, n int) {
	for range n {
		h.Report(Result{Kind: Response, Status: 503})
	}
}

func hostByAddr(c *Cluster, addr string) *Host {
	for _, h := range c.hosts {
		if h.Address == addr {
			return h
		}
	}
	return nil
}

// TestEjectedHostGetsNoTraffic: for every load balancer, a host failing
// consecutive_5xx times in a row is ejected and no longer picked, then
// returns after base_ejection_time at an interval sweep.
func TestEjectedHostGetsNoTraffic(t *testing.T) {
	for _, lb := range []struct {
		name   string
		policy config.LBPolicy
	}{
		{"round_robin", config.RoundRobin},
		{"least_request", config.LeastRequest},
		{"random", config.Random},
		{"ring_hash", config.RingHash},
		{"maglev", config.Maglev},
	} {
		t.Run(lb.name, func(t *testing.T) {
			s, clock := manualSet(t)
			cfg := &config.Cluster{
				Name: "api", LBPolicy: lb.policy, HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1, 1),
				OutlierDetection: odConfig(func(od *config.OutlierDetection) { od.MaxEjectionPercent = 50 }),
			}
			c := s.Update(map[string]*config.Cluster{"api": cfg})["api"]
			bad := hostByAddr(c, "10.0.0.2:80")
			fail(bad, 5)
			c.state.detector.Process()
			hashed := func(i int) (uint64, bool) { return HashString(fmt.Sprint("key-", i)), true }
			got := counts(c, 2000, hashed)
			if got[bad.Address] != 0 {
				t.Fatalf("ejected host picked %d times: %v", got[bad.Address], got)
			}
			if len(got) != 3 {
				t.Errorf("picked %v, want the 3 other hosts", got)
			}
			clock.Advance(29 * time.Second)
			c.state.detector.Sweep()
			if !bad.Ejected() {
				t.Fatal("returned before base_ejection_time")
			}
			clock.Advance(time.Second)
			c.state.detector.Sweep()
			if got := counts(c, 2000, hashed); got[bad.Address] == 0 {
				t.Errorf("returned host never picked: %v", got)
			}
		})
	}
}

// TestPanicThreshold: when ejections leave fewer than
// healthy_panic_threshold percent of the hosts, the balancer uses them all.
func TestPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		hosts     int
		eject     int
		threshold float64
		wantHosts int
	}{
		{name: "1 of 4 ejected: 75% available, ejected host skipped", hosts: 4, eject: 1, threshold: 50, wantHosts: 3},
		{name: "2 of 4 ejected: 50% is not below 50%", hosts: 4, eject: 2, threshold: 50, wantHosts: 2},
		{name: "3 of 4 ejected: panic, all hosts used", hosts: 4, eject: 3, threshold: 50, wantHosts: 4},
		{name: "all ejected: panic", hosts: 2, eject: 2, threshold: 50, wantHosts: 2},
		{name: "threshold 0 disables panic", hosts: 4, eject: 3, threshold: 0, wantHosts: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := manualSet(t)
			ws := make([]uint32, tc.hosts)
			for i := range ws {
				ws[i] = 1
			}
			cfg := &config.Cluster{
				Name: "api", HealthyPanicThreshold: tc.threshold, Endpoints: endpoints(ws...),
				OutlierDetection: odConfig(func(od *config.OutlierDetection) { od.MaxEjectionPercent = 100 }),
			}
			c := s.Update(map[string]*config.Cluster{"api": cfg})["api"]
			for _, h := range c.hosts[:tc.eject] {
				fail(h, 5)
			}
			c.state.detector.Process()
			if got := len(counts(c, 1000, noHash)); got != tc.wantHosts {
				t.Errorf("traffic to %d hosts, want %d", got, tc.wantHosts)
			}
			available := 0
			for _, st := range s.Status() {
				if st.Available {
					available++
				}
			}
			if available != tc.wantHosts {
				t.Errorf("/clusters shows %d available hosts, want %d", available, tc.wantHosts)
			}
		})
	}
}

func TestEjectionStatusAndMetrics(t *testing.T) {
	s, clock := manualSet(t)
	cfg := &config.Cluster{
		Name: "api", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1),
		OutlierDetection: odConfig(nil),
	}
	c := s.Update(map[string]*config.Cluster{"api": cfg})["api"]
	fail(c.hosts[0], 5)
	c.state.detector.Process()

	var got []HostStatus
	for _, st := range s.Status() {
		got = append(got, HostStatus{Address: st.Address, Ejected: st.Ejected, Ejections: st.Ejections,
			EjectedUntil: st.EjectedUntil, EjectionReason: st.EjectionReason, Available: st.Available})
	}
	until := clock.Now().Add(30 * time.Second)
	want := []HostStatus{
		{Address: "10.0.0.1:80", Ejected: true, Ejections: 1, EjectedUntil: until, EjectionReason: "consecutive_5xx"},
		{Address: "10.0.0.2:80", Available: true},
		{Address: "10.0.0.3:80", Available: true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s)
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"consulate_sidecar_cluster_outlier_ejections_active", map[string]string{"cluster": "api"}, 1},
		{"consulate_sidecar_cluster_outlier_ejections_total", map[string]string{"cluster": "api", "reason": "consecutive_5xx"}, 1},
		{"consulate_sidecar_cluster_outlier_ejections_total", map[string]string{"cluster": "api", "reason": "success_rate"}, 0},
		{"consulate_sidecar_cluster_outlier_ejections_overflow_total", map[string]string{"cluster": "api"}, 0},
	} {
		if got := metricValue(t, reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	clock.Advance(30 * time.Second)
	c.state.detector.Sweep()
	if n := metricValue(t, reg, "consulate_sidecar_cluster_outlier_ejections_active", map[string]string{"cluster": "api"}); n != 0 {
		t.Errorf("ejections_active after return = %v, want 0", n)
	}
}

// metricValue gathers reg and returns the value of the series of name
// with exactly labels (fails the test when absent).
func metricValue(t *testing.T, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// TestOutlierStateCarriedAcrossUpdates: a config change to the cluster
// keeps ejections and the detector; removing outlier_detection returns
// every host.
func TestOutlierStateCarriedAcrossUpdates(t *testing.T) {
	s, _ := manualSet(t)
	cfg := &config.Cluster{Name: "api", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1), OutlierDetection: odConfig(nil)}
	c := s.Update(map[string]*config.Cluster{"api": cfg})["api"]
	det := c.state.detector
	fail(c.hosts[0], 5)
	det.Process()

	changed := &config.Cluster{Name: "api", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1, 1), OutlierDetection: odConfig(nil)}
	c2 := s.Update(map[string]*config.Cluster{"api": changed})["api"]
	if c2 == c || c2.state.detector != det {
		t.Fatal("want a new cluster sharing the detector")
	}
	if !c2.hosts[0].Ejected() || counts(c2, 1000, noHash)[c2.hosts[0].Address] != 0 {
		t.Fatal("ejection lost across the update")
	}
	// The new host reports to the same detector.
	fail(c2.hosts[3], 5)
	det.Process()
	if det.Ejected() != 1 {
		t.Errorf("ejected %d hosts; max_ejection_percent 10%% of 4 hosts allows 1", det.Ejected())
	}

	off := &config.Cluster{Name: "api", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1, 1)}
	c3 := s.Update(map[string]*config.Cluster{"api": off})["api"]
	if c3.state.detector != nil || c3.hosts[0].Ejected() {
		t.Fatal("outlier detection removed but hosts still ejected")
	}
	if got := len(counts(c3, 1000, noHash)); got != 4 {
		t.Errorf("traffic to %d hosts, want 4", got)
	}
	// Reports are now no-ops.
	fail(c3.hosts[1], 10)
	if c3.hosts[1].Ejected() {
		t.Error("ejected without outlier detection")
	}
}

// TestDetectorGoroutine runs the real detector goroutine: ejection
// happens as soon as the run completes, return at the interval, and the
// goroutine ends with Close (goleak checks in TestMain).
func TestDetectorGoroutine(t *testing.T) {
	s := NewSet(zap.NewNop())
	cfg := &config.Cluster{
		Name: "api", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1),
		OutlierDetection: odConfig(func(od *config.OutlierDetection) {
			od.Interval = 20 * time.Millisecond
			od.BaseEjectionTime = 50 * time.Millisecond
		}),
	}
	c := s.Update(map[string]*config.Cluster{"api": cfg})["api"]
	bad := c.hosts[1]
	fail(bad, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	waitFor(ctx, t, "ejection", func() bool { return counts(c, 300, noHash)[bad.Address] == 0 })
	waitFor(ctx, t, "return", func() bool { return !bad.Ejected() && counts(c, 300, noHash)[bad.Address] > 0 })
	// Removing the cluster stops its goroutine; Close waits for it.
	s.Update(nil)
	s.Close()
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("no %s before the deadline", what)
		case <-tick.C:
		}
	}
}

func TestPickExcluding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy config.LBPolicy
	}{
		{"round_robin", config.RoundRobin},
		{"random", config.Random},
		{"least_request", config.LeastRequest},
		{"ring_hash", config.RingHash},
		{"maglev", config.Maglev},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := build(t, &config.Cluster{Name: "c", LBPolicy: tc.policy, Endpoints: endpoints(1, 1, 1)})
			hash := HashString("user-7")
			first := c.Pick(hash, true)
			other := 0
			for range 200 {
				h := c.PickExcluding(hash, true, []*Host{first}, 5)
				if h != first {
					other++
				}
			}
			// Random choices may, rarely, draw the excluded host 6 times.
			if other < 195 {
				t.Errorf("retry avoided the previous host %d of 200 times", other)
			}
			// With no re-pick allowed, a hash balancer keeps its choice.
			if tc.policy == config.RingHash || tc.policy == config.Maglev {
				if h := c.PickExcluding(hash, true, []*Host{first}, 0); h != first {
					t.Errorf("attempts 0 moved off the hashed host")
				}
			}
			// Excluding every host: the last pick is accepted.
			if h := c.PickExcluding(hash, true, c.hosts, 3); h == nil {
				t.Error("no host when all are excluded")
			}
		})
	}
}
