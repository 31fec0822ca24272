package xds

import (
	"fmt"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// benchMesh is a mesh of n services (svc-00000 ...), each with three
// instances behind three sidecars, every other one speaking http, and
// proxies sidecars named proxy-<i> with upstreams upstreams each, spread
// over the services.
func benchMesh(n, proxies, upstreams int) *mesh.Snapshot {
	snap := &mesh.Snapshot{
		Datacenter: testDC,
		Services:   make(map[string]*mesh.Service, n),
		Proxies:    make(map[string]*mesh.Proxy, proxies),
		Config:     mesh.Config{ServiceDefaults: make(map[string]*mesh.ServiceDefaults, n)},
	}
	name := func(i int) string { return fmt.Sprintf("svc-%05d", i) }
	for i := range n {
		svc := &mesh.Service{Name: name(i)}
		for j := range 3 {
			addr := fmt.Sprintf("10.%d.%d.%d", i/250%250, i%250, j+1)
			svc.Instances = append(svc.Instances, instance(svc.Name, fmt.Sprintf("%s-%d", svc.Name, j), "node", addr, 8080, mesh.HealthPassing))
			svc.Sidecars = append(svc.Sidecars, instance(svc.Name+"-sidecar-proxy", fmt.Sprintf("%s-%d-sidecar-proxy", svc.Name, j), "node", addr, 21000, mesh.HealthPassing))
		}
		snap.Services[svc.Name] = svc
		if i%2 == 0 {
			setProtocol(snap, svc.Name, "http")
		}
	}
	for p := range proxies {
		px := &mesh.Proxy{
			ID: fmt.Sprintf("proxy-%d", p), Name: "x-sidecar-proxy", Address: "10.0.0.1", Port: 21000,
			DestinationService: name(p % n), LocalServicePort: 8080,
		}
		for u := range upstreams {
			px.Upstreams = append(px.Upstreams, mesh.Upstream{
				DestinationName: name((p*upstreams + u*7919) % n),
				LocalBindPort:   10000 + u,
			})
		}
		snap.Proxies[px.ID] = px
	}
	return snap
}

func BenchmarkForSidecar100Upstreams(b *testing.B) {
	snap := benchMesh(101, 1, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForSidecar(snap, "proxy-0"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForSidecar_10kServices translates, per op, one of 1,000
// different proxies (ten upstreams each) of a 10,000-service mesh: what the
// control plane pays per connected sidecar when the mesh changes.
func BenchmarkForSidecar_10kServices(b *testing.B) {
	const proxies = 1000
	snap := benchMesh(10_000, proxies, 10)
	ids := make([]string, proxies)
	for i := range ids {
		ids[i] = fmt.Sprintf("proxy-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ForSidecar(snap, ids[i%proxies]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkForProxyless_10kServices builds the proxyless set of a
// 10,000-service mesh (40,000 resources) per op.
func BenchmarkForProxyless_10kServices(b *testing.B) {
	snap := benchMesh(10_000, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForProxyless(snap); err != nil {
			b.Fatal(err)
		}
	}
}
