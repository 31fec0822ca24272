package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// chainMesh is a model with every kind of chain link, for
// TestDepsCoverTranslation: services a..i (plain instances; e has
// sidecars), proxies p-a... calling them:
//
//	a: service-router → b          b: service-splitter 50/50 → c, d
//	c: resolver redirect → e       d: resolver failover → f
//	g: service-defaults (protocol)  h: resolver failover targets → i
//
// p-1 calls a, p-2 calls d and g, p-3 calls h, p-4 calls e.
func chainMesh() *mesh.Snapshot {
	inst := func(svc string, n int) mesh.Instance {
		return mesh.Instance{ID: fmt.Sprintf("%s-%d", svc, n), Service: svc, Node: fmt.Sprintf("node-%d", n), Datacenter: "dc1",
			Address: fmt.Sprintf("10.0.%d.%d", svc[0], n), Port: 8000 + n, Health: mesh.HealthPassing,
			Weights: mesh.Weights{Passing: 1, Warning: 1}}
	}
	s := &mesh.Snapshot{Index: 1, Datacenter: "dc1", Services: map[string]*mesh.Service{}, Proxies: map[string]*mesh.Proxy{}}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "web"} {
		s.Services[name] = &mesh.Service{Name: name, Instances: []mesh.Instance{inst(name, 1), inst(name, 2)}}
	}
	e := s.Services["e"]
	for n := 1; n <= 2; n++ {
		id := fmt.Sprintf("e-%d-sidecar-proxy", n)
		sc := inst("e-sidecar-proxy", n)
		sc.ID, sc.Port = id, 21000
		e.Sidecars = append(e.Sidecars, sc)
		s.Proxies[id] = &mesh.Proxy{ID: id, Name: "e-sidecar-proxy", Node: sc.Node, Address: sc.Address, Port: 21000,
			Health: mesh.HealthPassing, DestinationService: "e", DestinationServiceID: fmt.Sprintf("e-%d", n),
			LocalServiceAddress: "127.0.0.1", LocalServicePort: 8000 + n}
	}
	for n, ups := range [][]string{{"a"}, {"d", "g"}, {"h"}, {"e"}} {
		id := fmt.Sprintf("p-%d", n+1)
		p := &mesh.Proxy{ID: id, Name: "web-sidecar-proxy", Node: "node-9", Address: "10.9.9.9", Port: 21000 + n,
			Health: mesh.HealthPassing, DestinationService: "web", DestinationServiceID: fmt.Sprintf("web-%d", n),
			LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080}
		for k, u := range ups {
			p.Upstreams = append(p.Upstreams, mesh.Upstream{DestinationName: u, LocalBindPort: 9000 + k})
		}
		s.Proxies[id] = p
	}
	s.Config = mesh.Config{
		ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http"},
		ServiceDefaults: map[string]*mesh.ServiceDefaults{"g": {Name: "g", Protocol: "http"}},
		Routers: map[string]*mesh.ServiceRouter{"a": {Name: "a", Routes: []mesh.Route{{
			Match: &mesh.RouteMatch{PathPrefix: "/b"}, Destination: &mesh.RouteDestination{Service: "b"}}}}},
		Splitters: map[string]*mesh.ServiceSplitter{"b": {Name: "b", Splits: []mesh.Split{
			{Weight: 50, Service: "c"}, {Weight: 50, Service: "d"}}}},
		Resolvers: map[string]*mesh.ServiceResolver{
			"c": {Name: "c", Redirect: &mesh.ResolverRedirect{Service: "e"}},
			"d": {Name: "d", Failover: map[string]mesh.ResolverFailover{"*": {Service: "f"}}},
			"h": {Name: "h", Failover: map[string]mesh.ResolverFailover{"*": {Targets: []mesh.FailoverTarget{{Service: "i"}}}}},
		},
	}
	return s
}

// TestDepsCoverTranslation checks deps against the real translator: for
// each change, every sidecar that the model diff says is unaffected must
// translate to the same versions before and after it. A read that package
// xds adds outside what deps.go follows makes this fail, naming the
// change and the proxy.
func TestDepsCoverTranslation(t *testing.T) {
	touch := func(name string) func(*mesh.Snapshot) {
		return func(s *mesh.Snapshot) {
			svc := *s.Services[name]
			svc.Instances = append([]mesh.Instance(nil), svc.Instances...)
			svc.Instances[0].Health = mesh.HealthCritical
			if len(svc.Sidecars) > 0 { // the endpoints of a service in the mesh
				svc.Sidecars = append([]mesh.Instance(nil), svc.Sidecars...)
				svc.Sidecars[0].Health = mesh.HealthCritical
			}
			s.Services[name] = &svc
		}
	}
	changes := map[string]func(*mesh.Snapshot){
		"router retargeted to h": func(s *mesh.Snapshot) {
			s.Config.Routers["a"] = &mesh.ServiceRouter{Name: "a", Routes: []mesh.Route{{
				Match: &mesh.RouteMatch{PathPrefix: "/h"}, Destination: &mesh.RouteDestination{Service: "h"}}}}
		},
		"splitter weights": func(s *mesh.Snapshot) {
			s.Config.Splitters["b"] = &mesh.ServiceSplitter{Name: "b", Splits: []mesh.Split{
				{Weight: 90, Service: "c"}, {Weight: 10, Service: "d"}}}
		},
		"redirect timeout": func(s *mesh.Snapshot) {
			s.Config.Resolvers["c"] = &mesh.ServiceResolver{Name: "c", Redirect: &mesh.ResolverRedirect{Service: "e"},
				ConnectTimeout: 3 * time.Second}
		},
		"failover resolver timeout": func(s *mesh.Snapshot) {
			r := *s.Config.Resolvers["d"]
			r.ConnectTimeout = 2 * time.Second
			s.Config.Resolvers["d"] = &r
		},
		"resolver on h replaced": func(s *mesh.Snapshot) {
			s.Config.Resolvers["h"] = &mesh.ServiceResolver{Name: "h", ConnectTimeout: time.Second}
		},
		"new resolver on i": func(s *mesh.Snapshot) {
			s.Config.Resolvers["i"] = &mesh.ServiceResolver{Name: "i", ConnectTimeout: time.Second}
		},
		"g protocol": func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["g"] = &mesh.ServiceDefaults{Name: "g", Protocol: "tcp"}
		},
		"web defaults upstream override": func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["web"] = &mesh.ServiceDefaults{Name: "web",
				UpstreamOverrides: []mesh.UpstreamConfig{{Name: "h", ConnectTimeout: time.Second}}}
		},
		"e sidecar registration": func(s *mesh.Snapshot) {
			p := *s.Proxies["e-1-sidecar-proxy"]
			p.DestinationServiceID = "e-2"
			s.Proxies["e-1-sidecar-proxy"] = &p
		},
		"p-3 upstream added": func(s *mesh.Snapshot) {
			p := *s.Proxies["p-3"]
			p.Upstreams = append(append([]mesh.Upstream(nil), p.Upstreams...), mesh.Upstream{DestinationName: "b", LocalBindPort: 9100})
			s.Proxies["p-3"] = &p
		},
		"new service j": func(s *mesh.Snapshot) { s.Services["j"] = &mesh.Service{Name: "j"} },
	}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "web"} {
		changes["instances of "+name] = touch(name)
	}
	base := chainMesh()
	proxies := []string{"p-1", "p-2", "p-3", "p-4"}
	before := map[string]versions{}
	for _, id := range proxies {
		snap, err := (&XDS{}).Sidecar(base, id)
		if err != nil {
			t.Fatalf("base %s: %v", id, err)
		}
		before[id] = versionsOf(snap)
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			next := evolve(base, change)
			d := diffModels(base, next)
			skipped := 0
			for _, id := range proxies {
				if d.affects(id, sidecarDeps(base, id)) {
					continue
				}
				skipped++
				snap, err := (&XDS{}).Sidecar(next, id)
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				if got := versionsOf(snap); got != before[id] {
					t.Errorf("%s skipped as unaffected, but its translation changed: %v → %v", id, before[id], got)
				}
			}
			t.Logf("%d of %d proxies skipped", skipped, len(proxies))
		})
	}
}

// TestXDSProxylessIsolatesABrokenService: through the Translator the
// control plane uses, a broken entry of one service becomes a warning
// naming it while its listener stays served, and the others' changes go
// through.
func TestXDSProxylessIsolatesABrokenService(t *testing.T) {
	x := &XDS{}
	good := model(1, nil, map[string][]int{"api": {8080}, "db": {5432}})
	if _, ws, err := x.Proxyless(good); err != nil || len(ws) != 0 {
		t.Fatalf("good model: warnings %v, err %v", ws, err)
	}
	broken := model(2, nil, map[string][]int{"api": {8080}, "db": {5432, 5433}})
	broken.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 60}, {Weight: 30, Service: "db"}}}}
	snap, ws, err := x.Proxyless(broken)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Entry.String() != "service-splitter/api" || !strings.Contains(ws[0].Message, "keeps its last good configuration") {
		t.Fatalf("warnings = %v, want one for service-splitter/api", ws)
	}
	if _, ok := snap.GetResources(resource.ListenerType)["api"]; !ok {
		t.Error("api's listener is gone")
	}
	cla, ok := snap.GetResources(resource.EndpointType)["db.default.dc1.internal"].(*endpointv3.ClusterLoadAssignment)
	if !ok || len(cla.GetEndpoints()) == 0 || len(cla.GetEndpoints()[0].GetLbEndpoints()) != 2 {
		t.Errorf("db's endpoints did not follow the model: %v", cla)
	}
}
