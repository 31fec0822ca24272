package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPercentilesOf(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want percentiles
	}{
		{"empty", nil, percentiles{}},
		{"one", []float64{7}, percentiles{P50: 7, P99: 7, Max: 7}},
		{"hundred", func() []float64 {
			var v []float64
			for i := 100; i >= 1; i-- {
				v = append(v, float64(i))
			}
			return v
		}(), percentiles{P50: 50, P99: 99, Max: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, percentilesOf(tc.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestTopology: upstreams are distinct (Consul rejects duplicates), the
// first is the hot service the scenarios change, and hot services have no
// sidecars (their own instances, whose checks fail, are the endpoints).
func TestTopology(t *testing.T) {
	for _, n := range []int{20, 1000, 10000} {
		top := topology{services: n, proxies: 1000}
		for p := range top.sidecarCount() {
			ups := top.upstreams(p)
			seen := map[int]bool{}
			for _, u := range ups {
				if seen[u] || u < 0 || u >= n {
					t.Fatalf("services=%d sidecar %d: upstreams %v", n, p, ups)
				}
				seen[u] = true
			}
			if ups[0] != hot(p%hotServices) {
				t.Fatalf("services=%d sidecar %d: first upstream %d, want hot %d", n, p, ups[0], hot(p%hotServices))
			}
			if svc, _ := top.sidecar(p); svc%2 != 0 {
				t.Fatalf("sidecar %d fronts odd service %d", p, svc)
			}
		}
	}
	for j := range hotServices {
		if hot(j)%2 != 1 {
			t.Errorf("hot(%d) = %d has sidecars", j, hot(j))
		}
	}
}
