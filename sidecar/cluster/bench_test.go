package cluster

import (
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// BenchmarkPick measures one pick per load balancer over 16 hosts with
// mixed weights (hash LBs get a precomputed request hash).
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
		b.Run(tc.name, func(b *testing.B) {
			ws := make([]uint32, 16)
			for i := range ws {
				ws[i] = uint32(1 + i%3)
			}
			c := build(b, &config.Cluster{Name: "c", LBPolicy: tc.lb, Endpoints: endpoints(ws...)})
			hash := HashString("session-1234")
			b.ReportAllocs()
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
