package server

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

const (
	benchServices  = 10_000
	benchProxies   = 1_000
	benchUpstreams = 5
)

// benchModel is a mesh of benchServices services with two instances each,
// and benchProxies sidecars, each with benchUpstreams upstreams, one of which
// ("shared") every sidecar has. variant changes one instance of "shared".
func benchModel(variant int) *mesh.Snapshot {
	s := &mesh.Snapshot{Index: uint64(variant + 1), Datacenter: "dc1",
		Services: make(map[string]*mesh.Service, benchServices+1), Proxies: make(map[string]*mesh.Proxy, benchProxies)}
	s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http"}
	inst := func(svc string, i, port int) mesh.Instance {
		return mesh.Instance{ID: fmt.Sprintf("%s-%d", svc, i), Service: svc, Node: fmt.Sprintf("node-%d", i%50),
			Datacenter: "dc1", Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), Port: port,
			Health: mesh.HealthPassing, Weights: mesh.Weights{Passing: 1, Warning: 1}}
	}
	for i := range benchServices {
		name := fmt.Sprintf("svc-%05d", i)
		s.Services[name] = &mesh.Service{Name: name, Instances: []mesh.Instance{inst(name, i, 8080), inst(name, i+1, 8081)}}
	}
	s.Services["shared"] = &mesh.Service{Name: "shared", Instances: []mesh.Instance{inst("shared", 1, 9000), inst("shared", 2, 9000+variant%2)}}
	for i := range benchProxies {
		id := fmt.Sprintf("web-%04d-sidecar-proxy", i)
		p := &mesh.Proxy{ID: id, Name: "web-sidecar-proxy", Node: "node-1", Address: "10.1.0.1", Port: 21000,
			Health: mesh.HealthPassing, DestinationService: "web", DestinationServiceID: fmt.Sprintf("web-%04d", i),
			LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080}
		p.Upstreams = append(p.Upstreams, mesh.Upstream{DestinationName: "shared", LocalBindPort: 10000})
		for k := 1; k < benchUpstreams; k++ {
			p.Upstreams = append(p.Upstreams, mesh.Upstream{DestinationName: fmt.Sprintf("svc-%05d", (i*7+k*1013)%benchServices), LocalBindPort: 10000 + k})
		}
		s.Proxies[id] = p
	}
	return s
}

// benchBuilder is a builder with benchProxies connected sidecars (and
// proxyless clients when proxyless > 0), without gRPC: what is measured is
// the rebuild (translate, compare versions, set changed snapshots).
func benchBuilder(b *testing.B, src *fakeSource, tr Translator, proxyless int) *builder {
	b.Helper()
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	bl := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: tr, metrics: m, workers: defaultWorkers(), nodes: map[string]*built{}}
	for id := range src.Current().Proxies {
		bl.nodes[id] = &built{id: id, node: &core.Node{Id: id, UserAgentName: "envoy"}}
	}
	for i := range proxyless {
		id := fmt.Sprintf("grpc-client-%d", i)
		bl.nodes[id] = &built{id: id, node: &core.Node{Id: id, UserAgentName: "gRPC Go"}}
	}
	bl.rebuild(context.Background())
	if len(bl.cache.GetStatusKeys()) != 0 {
		b.Fatal("unexpected watches")
	}
	for id, e := range bl.nodes {
		if !e.set {
			b.Fatalf("node %s has no snapshot after the first rebuild", id)
		}
	}
	return bl
}

// BenchmarkRebuild is one full rebuild of every connected proxy for a model
// of 10,000 services and 1,000 connected sidecars.
//
//   - unchanged: a new model with the same content; every proxy is
//     translated, no snapshot is set (versions equal).
//   - endpoint-changed: one instance of a service every proxy uses moves;
//     every proxy gets a new EDS version and a new snapshot.
//   - with-proxyless: endpoint-changed plus 100 proxyless gRPC clients that
//     share one translation of all 10,000 services.
func BenchmarkRebuild(b *testing.B) {
	models := []*mesh.Snapshot{benchModel(0), benchModel(1)}
	for _, tc := range []struct {
		name      string
		flip      bool
		proxyless int
	}{
		{"unchanged", false, 0},
		{"endpoint-changed", true, 0},
		{"with-proxyless", true, 100},
	} {
		b.Run(tc.name, func(b *testing.B) {
			src := newFakeSource(models[0])
			bl := benchBuilder(b, src, &XDS{}, tc.proxyless)
			same := benchModel(0) // equal content, another pointer
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				i++
				switch {
				case tc.flip:
					src.Set(models[i%2])
				default:
					src.Set(same)
				}
				bl.rebuild(context.Background())
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchProxies, "ns/proxy")
		})
	}
}

// BenchmarkRebuildOneService is a rebuild after a change to one service
// that few proxies use (svc-01013 is an upstream of a handful), between two
// models that share every other pointer, as discovery's snapshots do: the
// model diff and the dependency check over 1,000 proxies, plus the few
// translations.
func BenchmarkRebuildOneService(b *testing.B) {
	base := benchModel(0)
	next := *base
	next.Services = maps.Clone(base.Services)
	svc := *base.Services["svc-01013"]
	svc.Instances = slices.Clone(svc.Instances)
	svc.Instances[0].Health = mesh.HealthCritical
	next.Services["svc-01013"] = &svc
	affected := 0
	for id := range base.Proxies {
		if _, ok := sidecarDeps(base, id)["svc-01013"]; ok {
			affected++
		}
	}
	benchAlternate(b, base, &next)
	b.ReportMetric(float64(affected), "affected-proxies")
}

// precomputed is a Translator that returns snapshots translated beforehand,
// so that BenchmarkRebuildServerOnly measures the server's own work.
type precomputed map[*mesh.Snapshot]map[string]*cache.Snapshot

func (p precomputed) Sidecar(snap *mesh.Snapshot, id string) (*cache.Snapshot, error) {
	return p[snap][id], nil
}

func (p precomputed) Proxyless(*mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	return &cache.Snapshot{}, nil, nil
}

// BenchmarkRebuildServerOnly is BenchmarkRebuild/endpoint-changed without
// the translation: version comparison, cache updates, bookkeeping.
func BenchmarkRebuildServerOnly(b *testing.B) {
	models := []*mesh.Snapshot{benchModel(0), benchModel(1)}
	tr := precomputed{}
	for _, m := range models {
		tr[m] = map[string]*cache.Snapshot{}
		for id := range m.Proxies {
			s, err := (&XDS{}).Sidecar(m, id)
			if err != nil {
				b.Fatal(err)
			}
			tr[m][id] = s
		}
	}
	src := newFakeSource(models[0])
	bl := benchBuilder(b, src, tr, 0)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		src.Set(models[i%2])
		bl.rebuild(context.Background())
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchProxies, "ns/proxy")
}

// hotModel is a mesh shaped like bench/controlplane's: benchServices
// services with three instances each, benchProxies sidecars each with
// three upstreams, the first one of ten hot services (so a change to one
// concerns a tenth of the proxies), the other two spread over the mesh; a
// service-resolver on every 10th service, proxy-defaults protocol http.
func hotModel(services int) *mesh.Snapshot {
	s := &mesh.Snapshot{Index: 1, Datacenter: "dc1",
		Services: make(map[string]*mesh.Service, services), Proxies: make(map[string]*mesh.Proxy, benchProxies)}
	s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http"}
	s.Config.Resolvers = map[string]*mesh.ServiceResolver{}
	for i := range services {
		name := fmt.Sprintf("svc-%05d", i)
		svc := &mesh.Service{Name: name}
		for k := range 3 {
			svc.Instances = append(svc.Instances, mesh.Instance{ID: fmt.Sprintf("%s-%d", name, k), Service: name,
				Node: fmt.Sprintf("node-%04d", i/10), Datacenter: "dc1", Address: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1),
				Port: 8080 + k, Health: mesh.HealthPassing, Weights: mesh.Weights{Passing: 1, Warning: 1}})
		}
		s.Services[name] = svc
		if i%10 == 0 {
			s.Config.Resolvers[name] = &mesh.ServiceResolver{Name: name, ConnectTimeout: 5 * time.Second}
		}
	}
	for i := range benchProxies {
		id := fmt.Sprintf("web-%04d-sidecar-proxy", i)
		p := &mesh.Proxy{ID: id, Name: "web-sidecar-proxy", Node: "node-1", Address: "10.1.0.1", Port: 21000,
			Health: mesh.HealthPassing, DestinationService: "web", DestinationServiceID: fmt.Sprintf("web-%04d", i),
			LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080}
		// Distinct upstreams (Consul refuses duplicates), as the harness
		// picks them.
		ups := []int{10 * (i % 10)}
		for _, c := range []int{(i*7919 + 104729) % services, (i*4099 + 15485863) % services} {
			for slices.Contains(ups, c) {
				c = (c + 1) % services
			}
			ups = append(ups, c)
		}
		for k, u := range ups {
			p.Upstreams = append(p.Upstreams, mesh.Upstream{DestinationName: fmt.Sprintf("svc-%05d", u), LocalBindPort: 10000 + k})
		}
		s.Proxies[id] = p
	}
	return s
}

// evolveModel is a copy of s sharing every value but what change replaces,
// as discovery's snapshots do.
func evolveModel(s *mesh.Snapshot, change func(*mesh.Snapshot)) *mesh.Snapshot {
	c := *s
	c.Index++
	c.Services = maps.Clone(s.Services)
	c.Config.Resolvers = maps.Clone(s.Config.Resolvers)
	change(&c)
	return &c
}

// BenchmarkRebuildChange is a rebuild after one change to a model shaped
// like the scale harness's (hotModel, 1,000 and 10,000 services), the next model sharing every
// unchanged value as discovery's do, alternating between two models:
//
//   - check: an instance of a hot service fails / recovers (100 proxies);
//   - resolver: a hot service's resolver changes ConnectTimeout (100);
//   - proxy-defaults: a global change, every proxy (1,000).
func BenchmarkRebuildChange(b *testing.B) {
	for _, tc := range []struct {
		name   string
		change func(*mesh.Snapshot)
	}{
		{"check", func(s *mesh.Snapshot) {
			svc := *s.Services["svc-00000"]
			svc.Instances = slices.Clone(svc.Instances)
			svc.Instances[0].Health = mesh.HealthCritical
			s.Services["svc-00000"] = &svc
		}},
		{"resolver", func(s *mesh.Snapshot) {
			s.Config.Resolvers["svc-00000"] = &mesh.ServiceResolver{Name: "svc-00000", ConnectTimeout: 2 * time.Second}
		}},
		{"proxy-defaults", func(s *mesh.Snapshot) {
			s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http", Config: map[string]string{"consulate_healthy_panic_threshold": "20"}}
		}},
	} {
		for _, services := range []int{1_000, benchServices} {
			b.Run(fmt.Sprintf("%s/services=%d", tc.name, services), func(b *testing.B) {
				benchChange(b, hotModel(services), tc.change)
			})
		}
	}
}

// benchChange measures rebuilds alternating between base and base after
// change.
func benchChange(b *testing.B, base *mesh.Snapshot, change func(*mesh.Snapshot)) {
	benchAlternate(b, base, evolveModel(base, change))
}

// benchAlternate measures rebuilds alternating between two models.
func benchAlternate(b *testing.B, base, next *mesh.Snapshot) {
	models := []*mesh.Snapshot{base, next}
	src := newFakeSource(models[0])
	bl := benchBuilder(b, src, &XDS{}, 0)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		src.Set(models[i%2])
		bl.rebuild(context.Background())
	}
}
