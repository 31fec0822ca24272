package main

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
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

// TestCheckChangeCountsHealthyEndpoints: sidecars receive a critical
// instance as an UNHEALTHY endpoint, so "instance 0 failed" is two
// endpoints that are not UNHEALTHY, not two endpoints.
func TestCheckChangeCountsHealthyEndpoints(t *testing.T) {
	c := newClient("sidecar-0", 0, false)
	fail := checkChanges(topology{services: 20, proxies: 1}, nil, []*client{c}, 1)[0]
	cla := func(statuses ...corev3.HealthStatus) *endpointv3.ClusterLoadAssignment {
		var lb []*endpointv3.LbEndpoint
		for _, s := range statuses {
			lb = append(lb, &endpointv3.LbEndpoint{HealthStatus: s})
		}
		return &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lb}}}
	}
	name := clusterOf(hot(0))
	c.endpoints[name] = cla(corev3.HealthStatus_HEALTHY, corev3.HealthStatus_HEALTHY, corev3.HealthStatus_HEALTHY)
	if fail.cond(c) {
		t.Errorf("three healthy endpoints meet the failure")
	}
	c.endpoints[name] = cla(corev3.HealthStatus_HEALTHY, corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_HEALTHY)
	if !fail.cond(c) {
		t.Errorf("two healthy endpoints and one UNHEALTHY do not meet the failure")
	}
}
