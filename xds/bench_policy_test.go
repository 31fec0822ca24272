package xds

import (
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// withPolicy gives every http service of a benchMesh the entries of a
// typical canary setup: resolver subsets v1/v2 by Service.Meta.version
// (instance 0 is v2), a router sending /v2 and "x-canary: 1" to v2 with
// retries, a 90/10 splitter for the rest, a PassiveHealthCheck and limits
// on every proxy's UpstreamConfig, and extension keys.
func withPolicy(snap *mesh.Snapshot) *mesh.Snapshot {
	snap.Config.Resolvers = map[string]*mesh.ServiceResolver{}
	snap.Config.Routers = map[string]*mesh.ServiceRouter{}
	snap.Config.Splitters = map[string]*mesh.ServiceSplitter{}
	for name, svc := range snap.Services {
		for i := range svc.Instances {
			v := "v1"
			if i == 0 {
				v = "v2"
			}
			svc.Instances[i].Meta = map[string]string{"version": v}
			svc.Sidecars[i].Meta = svc.Instances[i].Meta
		}
		if sd := snap.Config.ServiceDefaults[name]; sd == nil || sd.Protocol != "http" {
			continue
		}
		snap.Config.Resolvers[name] = &mesh.ServiceResolver{Name: name, DefaultSubset: "v1",
			Subsets: map[string]mesh.ResolverSubset{
				"v1": {Filter: `Service.Meta.version == v1`}, "v2": {Filter: `Service.Meta.version == "v2"`, OnlyPassing: true},
			},
			Meta: map[string]string{KeyConsecutiveGatewayFailure: "3", KeyHealthyPanicThreshold: "30"}}
		snap.Config.Routers[name] = &mesh.ServiceRouter{Name: name, Meta: map[string]string{KeyRetryPerTryTimeout: "1s"},
			Routes: []mesh.Route{
				{Match: &mesh.RouteMatch{PathPrefix: "/v2"}, Destination: &mesh.RouteDestination{ServiceSubset: "v2", PrefixRewrite: "/"}},
				{Match: &mesh.RouteMatch{Header: []mesh.HeaderMatch{{Name: "x-canary", Exact: "1"}}},
					Destination: &mesh.RouteDestination{ServiceSubset: "v2", NumRetries: 2, RetryOn: []string{"5xx"}}},
			}}
		snap.Config.Splitters[name] = &mesh.ServiceSplitter{Name: name, Splits: []mesh.Split{
			{Weight: 90, ServiceSubset: "v1"}, {Weight: 10, ServiceSubset: "v2"},
		}}
		sd := snap.Config.ServiceDefaults[name]
		sd.UpstreamDefaults = &mesh.UpstreamConfig{
			Limits:             &mesh.UpstreamLimits{MaxConcurrentRequests: intp(100)},
			PassiveHealthCheck: &mesh.PassiveHealthCheck{MaxFailures: 3, Interval: 10e9},
		}
	}
	return snap
}

// BenchmarkForSidecarPolicy100Upstreams is BenchmarkForSidecar100Upstreams
// with the discovery chain of withPolicy on every http upstream (half of
// them): three routes, two subset clusters with filters.
func BenchmarkForSidecarPolicy100Upstreams(b *testing.B) {
	snap := withPolicy(benchMesh(101, 1, 100))
	if _, err := ForSidecar(snap, "proxy-0"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForSidecar(snap, "proxy-0"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkForProxylessPolicy1kServices: the proxyless set of a
// 1,000-service mesh with withPolicy entries on half the services.
func BenchmarkForProxylessPolicy1kServices(b *testing.B) {
	snap := withPolicy(benchMesh(1000, 0, 0))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ForProxyless(snap); err != nil {
			b.Fatal(err)
		}
	}
}
