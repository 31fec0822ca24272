package discovery

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// syntheticInput is a mesh of n services with k instances each, every
// instance fronted by a sidecar (so 2n service names), with node and
// service checks, tags and meta, and a few config entries of every kind.
func syntheticInput(n, k int) *Input {
	in := &Input{Datacenter: "dc1", Index: 1, Services: make(map[string][]*api.ServiceEntry, 2*n)}
	nodes := make([]*api.Node, 50)
	for i := range nodes {
		nodes[i] = &api.Node{Node: fmt.Sprintf("node-%02d", i), Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250), Datacenter: "dc1",
			Meta: map[string]string{"rack": fmt.Sprint(i % 4)}}
	}
	serfHealth := &api.HealthCheck{CheckID: "serfHealth", Status: api.HealthPassing}
	for s := range n {
		name := fmt.Sprintf("svc-%05d", s)
		tags := []string{"v1", "team-" + fmt.Sprint(s%7)}
		meta := map[string]string{"version": "v1"}
		var svc, proxies []*api.ServiceEntry
		for i := range k {
			node := nodes[(s*k+i)%len(nodes)]
			id := fmt.Sprintf("%s-%d", name, i)
			svc = append(svc, &api.ServiceEntry{
				Node: node,
				Service: &api.AgentService{ID: id, Service: name, Port: 8080, Tags: tags, Meta: meta,
					Weights: api.AgentWeights{Passing: 1, Warning: 1}},
				Checks: api.HealthChecks{serfHealth, {CheckID: "service:" + id, ServiceID: id, Status: api.HealthPassing}},
			})
			proxies = append(proxies, &api.ServiceEntry{
				Node: node,
				Service: &api.AgentService{ID: id + "-sidecar-proxy", Service: name + "-sidecar-proxy", Kind: api.ServiceKindConnectProxy, Port: 21000,
					Proxy: &api.AgentServiceConnectProxyConfig{
						DestinationServiceName: name, DestinationServiceID: id, LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080,
						Config: map[string]any{"protocol": "http"},
						Upstreams: []api.Upstream{{DestinationName: fmt.Sprintf("svc-%05d", (s+1)%n), LocalBindPort: 9000,
							Config: map[string]any{"connect_timeout_ms": float64(1000)}}},
					}},
				Checks: api.HealthChecks{serfHealth, {CheckID: "sidecar:" + id, ServiceID: id + "-sidecar-proxy", Status: api.HealthPassing}},
			})
		}
		in.Services[name] = svc
		in.Services[name+"-sidecar-proxy"] = proxies
	}
	in.Entries = map[mesh.EntryKind][]RawEntry{
		mesh.KindProxyDefaults: {{"Kind": "proxy-defaults", "Name": "global", "Config": map[string]any{"protocol": "http"}, "ModifyIndex": float64(5)}},
	}
	for s := range min(n, 100) {
		name := fmt.Sprintf("svc-%05d", s)
		in.Entries[mesh.KindServiceDefaults] = append(in.Entries[mesh.KindServiceDefaults],
			RawEntry{"Kind": "service-defaults", "Name": name, "Protocol": "http", "ModifyIndex": float64(10 + s)})
		in.Entries[mesh.KindServiceRouter] = append(in.Entries[mesh.KindServiceRouter], RawEntry{
			"Kind": "service-router", "Name": name, "ModifyIndex": float64(10 + s),
			"Routes": []any{map[string]any{
				"Match":       map[string]any{"HTTP": map[string]any{"PathRegex": "/v[0-9]+/.*"}},
				"Destination": map[string]any{"RequestTimeout": "5s", "NumRetries": float64(2)},
			}},
		})
	}
	return in
}

// BenchmarkBuildModel10kServices builds the whole model from scratch for
// 10,000 services × 3 instances (plus their 30,000 sidecars).
//
// Latest figures (2 shared cores, load average ≈ 12, go test -bench .
// -benchmem ./discovery/): BuildModel10kServices ≈ 210–520 ms/op wall,
// ≈ 236–276 ms/op CPU, 52.7 MB/op, 215,490 allocs/op;
// Rebuild10kServicesOneChanged ≈ 2–10 ms/op wall, ≈ 4–6 ms/op CPU,
// 2.6 MB/op, 230 allocs/op.
func BenchmarkBuildModel10kServices(b *testing.B) {
	in := syntheticInput(10_000, 3)
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		snap := BuildSnapshot(in, nil)
		if len(snap.Services) != 20_000 {
			b.Fatalf("%d services", len(snap.Services))
		}
	}
}

// reportCPU adds the process CPU time per op (GC included) to the
// benchmark's figures: on a shared machine wall time (ns/op) swings with
// other load, CPU time much less.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRebuild10kServicesOneChanged is the watcher's steady state: one
// service refetched, then the snapshot reassembled from cached parts.
func BenchmarkRebuild10kServicesOneChanged(b *testing.B) {
	in := syntheticInput(10_000, 3)
	bl := newBuilder()
	for name, entries := range in.Services {
		bl.setService(name, entries)
	}
	last := bl.build(in.Datacenter, in.Index, in.Entries, nil).Config
	b.ReportAllocs()
	defer reportCPU(b)()
	for b.Loop() {
		bl.setService("svc-00042", in.Services["svc-00042"])
		snap := bl.build(in.Datacenter, in.Index, in.Entries, &last)
		last = snap.Config
	}
}
