package cluster

import (
	"fmt"
	"testing"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/outlier"
)

// Figures (2026-11-25, 2 shared cores under load average 6–14, so ranges
// over -count=3; every figure 0 allocs/op):
//
//	BenchmarkPick/round_robin            10–13 ns   _outlier 12–15 ns
//	BenchmarkPick/least_request         148–196 ns  _outlier 156–306 ns
//	BenchmarkPick/random                 49–100 ns  _outlier 77–111 ns
//	BenchmarkPick/ring_hash             102–633 ns  _outlier 61–75 ns
//	BenchmarkPick/maglev                 15–20 ns   _outlier 26–91 ns
//	  (-cpu 1: round_robin 11 vs 11–12 ns, maglev 11–15 vs 8–9 ns)
//	BenchmarkReport/outlier_off          17–34 ns (-cpu 1: 14–20 ns)
//	BenchmarkReport/success              33–46 ns (-cpu 1: 29–33 ns)
//	BenchmarkReport/one_5xx_in_4         30–47 ns
//	BenchmarkReport/local_failures       27–38 ns
//	BenchmarkSweep/hosts_16               4.0–5.6 µs, 1.8 KB, 9 allocs
//	BenchmarkSweep/hosts_256             30–41 µs, 38 KB, 17 allocs
//
// Outlier detection adds nothing measurable to a pick (the spread is the
// machine's noise): ejection swaps a rebuilt balancer instead of checking
// hosts per pick. Report is a few uncontended atomics plus, under
// RunParallel, cache-line sharing on the one host both cores report to.

// BenchmarkPick measures one pick per load balancer over 16 hosts with
// mixed weights (hash LBs get a precomputed request hash). The
// <lb>_outlier variants run with outlier detection on and one host
// ejected: ejection rebuilds the balancer, so a pick costs the same.
func BenchmarkPick(b *testing.B) {
	for _, tc := range []struct {
		name string
		lb   config.LBPolicy
	}{
		{"round_robin", config.RoundRobin},
		{"least_request", config.LeastRequest},
		{"random", config.Random},
		{"ring_hash", config.RingHash},
		{"maglev", config.Maglev},
	} {
		for _, od := range []bool{false, true} {
			name := tc.name
			if od {
				name += "_outlier"
			}
			b.Run(name, func(b *testing.B) {
				ws := make([]uint32, 16)
				for i := range ws {
					ws[i] = uint32(1 + i%3)
				}
				cfg := &config.Cluster{Name: "c", LBPolicy: tc.lb, HealthyPanicThreshold: 50, Endpoints: endpoints(ws...)}
				s := NewSet(zap.NewNop(), manualDetectors())
				b.Cleanup(s.Close)
				if od {
					d := outlier.Defaults()
					cfg.OutlierDetection = &d
				}
				c := s.Update(map[string]*config.Cluster{"c": cfg})["c"]
				if od {
					fail(c.hosts[3], 5)
					c.state.detector.Process()
					if !c.hosts[3].Ejected() {
						b.Fatal("not ejected")
					}
				}
				hash := HashString("session-1234")
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if c.Pick(hash, true) == nil {
							b.Fatal("no host")
						}
					}
				})
			})
		}
	}
}

// BenchmarkReport is Host.Report on the hot path (both cores reporting to
// the same host, the worst case for the shared counters).
func BenchmarkReport(b *testing.B) {
	for _, tc := range []struct {
		name string
		od   bool
		// every failEvery-th response is a 503 (0: none)
		failEvery int
	}{
		{name: "outlier_off", od: false},
		{name: "success", od: true},
		{name: "one_5xx_in_4", od: true, failEvery: 4},
		{name: "local_failures", od: true, failEvery: -1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := &config.Cluster{Name: "c", HealthyPanicThreshold: 50, Endpoints: endpoints(1, 1, 1)}
			if tc.od {
				d := outlier.Defaults()
				cfg.OutlierDetection = &d
			}
			s := NewSet(zap.NewNop(), manualDetectors())
			b.Cleanup(s.Close)
			h := s.Update(map[string]*config.Cluster{"c": cfg})["c"].hosts[0]
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					switch {
					case tc.failEvery < 0:
						h.Report(Result{Kind: ConnectFailed})
					case tc.failEvery > 0 && i%tc.failEvery == 0:
						h.Report(Result{Kind: Response, Status: 503})
					default:
						h.Report(Result{Kind: Response, Status: 200})
					}
				}
			})
		})
	}
}

// BenchmarkSweep is one interval sweep (the detector's goroutine) over a
// cluster with hosts that all saw traffic, success rate and failure
// percentage both enforced.
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{16, 256} {
		b.Run(fmt.Sprintf("hosts_%d", n), func(b *testing.B) {
			ws := make([]uint32, n)
			for i := range ws {
				ws[i] = 1
			}
			d := outlier.Defaults()
			d.EnforcingFailurePercentage = 100
			cfg := &config.Cluster{Name: "c", HealthyPanicThreshold: 50, Endpoints: endpoints(ws...), OutlierDetection: &d}
			s := NewSet(zap.NewNop(), manualDetectors())
			b.Cleanup(s.Close)
			c := s.Update(map[string]*config.Cluster{"c": cfg})["c"]
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				for _, h := range c.hosts {
					for range 100 {
						h.Report(Result{Kind: Response, Status: 200})
					}
				}
				b.StartTimer()
				c.state.detector.Sweep()
			}
		})
	}
}
