package xds

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// sameResources fails the test unless got and want hold the same
// resources with the same versions.
func sameResources(t *testing.T, what string, got, want *Resources) {
	t.Helper()
	if diff := cmp.Diff(want.Versions(), got.Versions()); diff != "" {
		t.Errorf("%s: type versions differ (-uncached +cached):\n%s", what, diff)
	}
	for _, typ := range TypeURLs() {
		if diff := cmp.Diff(want.ResourceVersions(typ), got.ResourceVersions(typ)); diff != "" {
			t.Errorf("%s: %s versions differ (-uncached +cached):\n%s", what, shortType(typ), diff)
			continue
		}
		w, g := want.Items(typ), got.Items(typ)
		for i := range w {
			if !proto.Equal(w[i], g[i]) {
				t.Errorf("%s: %s %d differs:\nuncached %v\ncached   %v", what, shortType(typ), i, w[i], g[i])
			}
		}
	}
}

// checkCached compares the cache's answer for every proxy of snap with
// ForSidecar's, errors included.
func checkCached(t *testing.T, step string, c *SidecarCache, snap *mesh.Snapshot) map[string]map[string]string {
	t.Helper()
	versions := map[string]map[string]string{}
	for _, id := range slices.Sorted(maps.Keys(snap.Proxies)) {
		want, wantErr := ForSidecar(snap, id)
		got, gotErr := c.ForSidecar(snap, id)
		what := step + " " + id
		if fmt.Sprint(wantErr) != fmt.Sprint(gotErr) {
			t.Errorf("%s: error %v, want %v", what, gotErr, wantErr)
			continue
		}
		if wantErr != nil {
			continue
		}
		sameResources(t, what, got, want)
		versions[id] = want.Versions()
	}
	return versions
}

// TestSidecarCacheMatchesForSidecar: on every golden scenario, the
// cache's resources and versions are ForSidecar's, from a cache that has
// seen every scenario before (unrelated models, whose entries must not
// leak into this one) and from a fresh one.
func TestSidecarCacheMatchesForSidecar(t *testing.T) {
	shared := &SidecarCache{}
	for round := range 2 {
		for _, tt := range allSidecarCases() {
			snap := testMesh()
			tt.change(snap)
			checkCached(t, fmt.Sprintf("round %d %s (shared cache)", round, tt.name), shared, snap)
			checkCached(t, fmt.Sprintf("round %d %s (shared cache, again)", round, tt.name), shared, snap)
			checkCached(t, tt.name+" (fresh cache)", &SidecarCache{}, snap)
		}
	}
	if hits, _ := shared.Stats(); hits == 0 {
		t.Error("the shared cache never reused a translation")
	}
}

// cacheMesh is a mesh for the cache's tests: front (3 sidecars) and mid
// (2 sidecars) call a plain service, a splitter (b, c), a resolver with
// subsets by the fronted instance's version and failover to d, and (mid)
// a router to e; sub has sidecars, whose registrations the subset filter
// reads.
func cacheMesh() *mesh.Snapshot {
	s := &mesh.Snapshot{Index: 1, Datacenter: testDC, Services: map[string]*mesh.Service{}, Proxies: map[string]*mesh.Proxy{}}
	s.Config = mesh.Config{
		ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http"},
		ServiceDefaults: map[string]*mesh.ServiceDefaults{"front": {Name: "front", UpstreamDefaults: &mesh.UpstreamConfig{ConnectTimeout: 3 * time.Second}}},
		Routers: map[string]*mesh.ServiceRouter{"routed": {Name: "routed", Routes: []mesh.Route{
			{Match: &mesh.RouteMatch{PathPrefix: "/x"}, Destination: &mesh.RouteDestination{Service: "e"}}}}},
		Splitters: map[string]*mesh.ServiceSplitter{"split": {Name: "split", Splits: []mesh.Split{{Weight: 50, Service: "b"}, {Weight: 50, Service: "c"}}}},
		Resolvers: map[string]*mesh.ServiceResolver{"sub": {Name: "sub", DefaultSubset: "v1",
			Subsets:  map[string]mesh.ResolverSubset{"v1": {Filter: "Service.Meta.version == v1"}, "v2": {Filter: "Service.Meta.version == v2"}},
			Failover: map[string]mesh.ResolverFailover{"*": {Service: "d"}}}},
	}
	n := 0
	plain := func(name string, count int) *mesh.Service {
		svc := &mesh.Service{Name: name}
		for k := range count {
			n++
			svc.Instances = append(svc.Instances, instance(name, fmt.Sprintf("%s-%d", name, k), fmt.Sprintf("node-%d", n),
				fmt.Sprintf("10.0.%d.%d", n/200, n%200+1), 8080, mesh.HealthPassing))
		}
		s.Services[name] = svc
		return svc
	}
	withSidecars := func(name string, count int, ups []mesh.Upstream) {
		svc := plain(name, count)
		for k, inst := range svc.Instances {
			id := fmt.Sprintf("%s-%d-sidecar-proxy", name, k)
			sc := instance(name+"-sidecar-proxy", id, inst.Node, inst.Address, 21000, mesh.HealthPassing)
			svc.Sidecars = append(svc.Sidecars, sc)
			s.Proxies[id] = &mesh.Proxy{ID: id, Name: name + "-sidecar-proxy", Node: inst.Node, Address: inst.Address, Port: 21000,
				Health: mesh.HealthPassing, DestinationService: name, DestinationServiceID: inst.ID, LocalServicePort: 8080,
				Upstreams: slices.Clone(ups)}
		}
	}
	for _, name := range []string{"a", "b", "c", "d", "e", "routed"} {
		plain(name, 2)
	}
	withSidecars("front", 3, []mesh.Upstream{{DestinationName: "a", LocalBindPort: 9001},
		{DestinationName: "split", LocalBindPort: 9002}, {DestinationName: "sub", LocalBindPort: 9003}})
	withSidecars("mid", 2, []mesh.Upstream{{DestinationName: "a", LocalBindPort: 9001},
		{DestinationName: "routed", LocalBindPort: 9002}, {DestinationName: "sub", LocalBindPort: 9003}})
	withSidecars("sub", 2, nil)
	sub := s.Services["sub"]
	for k := range sub.Instances {
		sub.Instances[k].Meta = map[string]string{"version": fmt.Sprintf("v%d", k+1)}
	}
	return s
}

// evolve returns a copy of s sharing every value but what change replaces,
// as discovery's snapshots do.
func evolve(s *mesh.Snapshot, change func(*mesh.Snapshot)) *mesh.Snapshot {
	c := *s
	c.Index++
	c.Services, c.Proxies = maps.Clone(s.Services), maps.Clone(s.Proxies)
	c.Config.ServiceDefaults, c.Config.Routers = maps.Clone(s.Config.ServiceDefaults), maps.Clone(s.Config.Routers)
	c.Config.Splitters, c.Config.Resolvers = maps.Clone(s.Config.Splitters), maps.Clone(s.Config.Resolvers)
	change(&c)
	return &c
}

// withService replaces service name by a copy that edit changed.
func withService(s *mesh.Snapshot, name string, edit func(*mesh.Service)) {
	svc := *s.Services[name]
	svc.Instances, svc.Sidecars = slices.Clone(svc.Instances), slices.Clone(svc.Sidecars)
	edit(&svc)
	s.Services[name] = &svc
}

func withProxy(s *mesh.Snapshot, id string, edit func(*mesh.Proxy)) {
	p := *s.Proxies[id]
	p.Upstreams = slices.Clone(p.Upstreams)
	edit(&p)
	s.Proxies[id] = &p
}

// TestSidecarCacheFollowsChanges makes one change at a time to a model, as
// discovery would (new values for what changed, the rest shared), and
// checks after each that every proxy gets from the cache exactly what
// ForSidecar gives and that the proxies the change concerns (and only
// those) got new versions: a stale entry served from the cache fails it.
func TestSidecarCacheFollowsChanges(t *testing.T) {
	steps := []struct {
		name    string
		change  func(*mesh.Snapshot)
		changed []string // proxies whose versions change
	}{
		{"plain upstream instance fails", func(s *mesh.Snapshot) {
			withService(s, "a", func(svc *mesh.Service) { svc.Instances[0].Health = mesh.HealthCritical })
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"split leg fails", func(s *mesh.Snapshot) {
			withService(s, "c", func(svc *mesh.Service) { svc.Instances[1].Health = mesh.HealthCritical })
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy"}},
		{"router destination fails", func(s *mesh.Snapshot) {
			withService(s, "e", func(svc *mesh.Service) { svc.Instances[0].Health = mesh.HealthCritical })
		}, []string{"mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"failover target fails", func(s *mesh.Snapshot) {
			withService(s, "d", func(svc *mesh.Service) { svc.Instances[0].Health = mesh.HealthCritical })
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"fronted instance's version moves (subset filter)", func(s *mesh.Snapshot) {
			withService(s, "sub", func(svc *mesh.Service) {
				svc.Instances[1].Meta = map[string]string{"version": "v1"}
			})
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"sidecar registration fronts another instance (subset filter)", func(s *mesh.Snapshot) {
			withProxy(s, "sub-0-sidecar-proxy", func(p *mesh.Proxy) { p.DestinationServiceID = "sub-1" })
			// Make the two instances differ again, so that it matters.
			withService(s, "sub", func(svc *mesh.Service) {
				svc.Instances[1].Meta = map[string]string{"version": "v2"}
			})
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"only a sidecar registration moves (subset filter)", func(s *mesh.Snapshot) {
			withProxy(s, "sub-0-sidecar-proxy", func(p *mesh.Proxy) { p.DestinationServiceID = "sub-0" })
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"resolver connect timeout", func(s *mesh.Snapshot) {
			r := *s.Config.Resolvers["sub"]
			r.ConnectTimeout = 7 * time.Second
			s.Config.Resolvers["sub"] = &r
		}, []string{"mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}}, // front's service-defaults set a connect timeout
		{"splitter weights", func(s *mesh.Snapshot) {
			s.Config.Splitters["split"] = &mesh.ServiceSplitter{Name: "split", Splits: []mesh.Split{{Weight: 90, Service: "b"}, {Weight: 10, Service: "c"}}}
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy"}},
		{"router gains a route", func(s *mesh.Snapshot) {
			r := *s.Config.Routers["routed"]
			r.Routes = append(slices.Clone(r.Routes), mesh.Route{Match: &mesh.RouteMatch{PathPrefix: "/y"}, Destination: &mesh.RouteDestination{Service: "d"}})
			s.Config.Routers["routed"] = &r
		}, []string{"mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"reached through the new route", func(s *mesh.Snapshot) {
			withService(s, "d", func(svc *mesh.Service) { svc.Instances[1].Health = mesh.HealthCritical })
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"downstream's UpstreamConfig", func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["front"] = &mesh.ServiceDefaults{Name: "front", UpstreamDefaults: &mesh.UpstreamConfig{ConnectTimeout: 4 * time.Second}}
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy"}},
		{"one proxy's upstream config and bind port", func(s *mesh.Snapshot) {
			withProxy(s, "mid-1-sidecar-proxy", func(p *mesh.Proxy) {
				p.Upstreams[0].Config = map[string]string{"connect_timeout_ms": "1500"}
				p.Upstreams[1].LocalBindPort = 9102
			})
		}, []string{"mid-1-sidecar-proxy"}},
		{"proxy's own port and request timeout (public listener)", func(s *mesh.Snapshot) {
			withProxy(s, "front-1-sidecar-proxy", func(p *mesh.Proxy) {
				p.Port = 21001
				p.Config = map[string]string{"local_request_timeout_ms": "2500"}
			})
		}, []string{"front-1-sidecar-proxy"}},
		{"downstream's local timeouts (public listener, local_app)", func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["mid"] = &mesh.ServiceDefaults{Name: "mid", LocalRequestTimeout: 3 * time.Second, LocalConnectTimeout: time.Second}
		}, []string{"mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"proxy's own service protocol (public listener)", func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["sub"] = &mesh.ServiceDefaults{Name: "sub", Protocol: "http2"}
		}, nil}, // sub's consumers now fail (http chain to an http2 target); its own sidecars change
		{"protocol made consistent again", func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["sub"] = &mesh.ServiceDefaults{Name: "sub", Protocol: "http"}
		}, nil},
		{"proxy-defaults (global)", func(s *mesh.Snapshot) {
			s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http", Config: map[string]string{"consulate_healthy_panic_threshold": "20"}}
		}, []string{"front-0-sidecar-proxy", "front-1-sidecar-proxy", "front-2-sidecar-proxy", "mid-0-sidecar-proxy", "mid-1-sidecar-proxy"}},
		{"nothing (new model, same values)", func(*mesh.Snapshot) {}, []string{}},
	}
	c := &SidecarCache{}
	snap := cacheMesh()
	prev := checkCached(t, "initial", c, snap)
	if len(prev) != len(snap.Proxies) {
		t.Fatalf("initial model: %d of %d proxies translate", len(prev), len(snap.Proxies))
	}
	for _, st := range steps {
		snap = evolve(snap, st.change)
		cur := checkCached(t, st.name, c, snap)
		if t.Failed() {
			t.FailNow()
		}
		if st.changed != nil {
			var moved []string
			for id, v := range cur {
				if !maps.Equal(v, prev[id]) {
					moved = append(moved, id)
				}
			}
			slices.Sort(moved)
			if diff := cmp.Diff(st.changed, moved); diff != "" && !(len(st.changed) == 0 && len(moved) == 0) {
				t.Errorf("%s: proxies with new versions (-want +got):\n%s", st.name, diff)
			}
		}
		prev = cur
	}
	if hits, misses := c.Stats(); hits == 0 || misses == 0 {
		t.Errorf("hits %d, misses %d: the test does not exercise the cache", hits, misses)
	}
}

// TestSidecarCacheReusesAcrossProxies: proxies with the same upstream
// share its translation, and an unchanged model translates nothing.
func TestSidecarCacheReusesAcrossProxies(t *testing.T) {
	c := &SidecarCache{}
	snap := cacheMesh()
	checkCached(t, "initial", c, snap)
	ups, pure := c.Len()
	// front's three upstreams are shared by its 3 sidecars, mid's by its
	// 2 (a is not: the downstream service is part of the key). Listeners:
	// a public one per address (7 proxies), one local_app cluster for all
	// (127.0.0.1:8080, http), one per upstream ID and port (a, split, sub,
	// routed).
	if ups != 6 || pure != 7+1+4 {
		t.Errorf("entries: %d upstreams, %d listeners and local_app clusters; want 6, %d", ups, pure, 7+1+4)
	}
	_, misses := c.Stats()
	next := evolve(snap, func(*mesh.Snapshot) {})
	checkCached(t, "same values", c, next)
	if _, m := c.Stats(); m != misses {
		t.Errorf("an unchanged model made %d new translations", m-misses)
	}
	// A change of the globals drops every upstream, not the listeners.
	next = evolve(next, func(s *mesh.Snapshot) { s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http"} })
	checkCached(t, "proxy-defaults", c, next)
	if _, m := c.Stats(); m-misses != int64(ups) {
		t.Errorf("a global change made %d new translations, want %d", m-misses, ups)
	}
}

// TestSidecarCacheConcurrent: translations of two models at once (as the
// builder's workers may) give each model's own resources.
func TestSidecarCacheConcurrent(t *testing.T) {
	c := &SidecarCache{}
	models := []*mesh.Snapshot{cacheMesh()}
	models = append(models, evolve(models[0], func(s *mesh.Snapshot) {
		withService(s, "a", func(svc *mesh.Service) { svc.Instances[0].Health = mesh.HealthCritical })
	}))
	models = append(models, evolve(models[1], func(s *mesh.Snapshot) {
		s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http", Config: map[string]string{"consulate_healthy_panic_threshold": "20"}}
	}))
	want := make([]map[string]*Resources, len(models))
	for i, m := range models {
		want[i] = map[string]*Resources{}
		for id := range m.Proxies {
			r, err := ForSidecar(m, id)
			if err != nil {
				t.Fatal(err)
			}
			want[i][id] = r
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for round := range 50 {
				i := (w + round) % len(models)
				for id := range models[i].Proxies {
					got, err := c.ForSidecar(models[i], id)
					if err != nil {
						t.Error(err)
						return
					}
					if !maps.Equal(got.Versions(), want[i][id].Versions()) {
						t.Errorf("model %d, %s: versions %v, want %v", i, id, got.Versions(), want[i][id].Versions())
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
