package server

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// evolve returns a copy of s sharing every unchanged pointer, as discovery's
// incremental build does, after change has edited the copy's maps.
func evolve(s *mesh.Snapshot, change func(*mesh.Snapshot)) *mesh.Snapshot {
	n := *s
	n.Index++
	n.Services = maps.Clone(s.Services)
	n.Proxies = maps.Clone(s.Proxies)
	n.Config.ServiceDefaults = maps.Clone(s.Config.ServiceDefaults)
	n.Config.Routers = maps.Clone(s.Config.Routers)
	n.Config.Splitters = maps.Clone(s.Config.Splitters)
	n.Config.Resolvers = maps.Clone(s.Config.Resolvers)
	n.Config.Errors = append([]mesh.EntryError(nil), s.Config.Errors...)
	if change != nil {
		change(&n)
	}
	return &n
}

func withEntries(s *mesh.Snapshot) *mesh.Snapshot {
	s.Config = mesh.Config{
		ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http"},
		ServiceDefaults: map[string]*mesh.ServiceDefaults{"db": {Name: "db", Protocol: "tcp"}},
		Routers: map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
			{Destination: &mesh.RouteDestination{Service: "api-v2"}},
			{Destination: &mesh.RouteDestination{ServiceSubset: "v1"}}, // own service
		}}},
		Splitters: map[string]*mesh.ServiceSplitter{"api-v2": {Name: "api-v2", Splits: []mesh.Split{
			{Weight: 50, Service: "canary"}, {Weight: 50},
		}}},
		Resolvers: map[string]*mesh.ServiceResolver{"canary": {Name: "canary",
			Redirect: &mesh.ResolverRedirect{Service: "canary-eu"},
			Failover: map[string]mesh.ResolverFailover{"*": {Service: "backup", Targets: []mesh.FailoverTarget{{Service: "last-resort"}}}},
		}},
	}
	return s
}

func TestSidecarDeps(t *testing.T) {
	snap := withEntries(model(1, map[string][]string{
		"a-sidecar-proxy": {"api"},
		"b-sidecar-proxy": {"db", "db"},
	}, map[string][]int{"api": {1}, "db": {2}}))
	for _, tc := range []struct {
		name, proxy string
		want        []string
	}{
		{"chain through router, splitter, resolver redirect and failover", "a-sidecar-proxy",
			[]string{"api", "api-v2", "backup", "canary", "canary-eu", "last-resort", "web"}},
		{"plain upstream, listed twice", "b-sidecar-proxy", []string{"db", "web"}},
		{"unknown proxy", "nobody", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deps := sidecarDeps(snap, tc.proxy)
			var got []string
			for n := range deps {
				got = append(got, n)
			}
			if diff := cmp.Diff(tc.want, got, cmpSorted); diff != "" {
				t.Errorf("deps (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpSorted = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestDiffModels(t *testing.T) {
	base := withEntries(model(1, map[string][]string{"a-sidecar-proxy": {"api"}},
		map[string][]int{"api": {1}, "db": {2}, "other": {3}}))
	for _, tc := range []struct {
		name     string
		change   func(*mesh.Snapshot)
		all      bool
		services []string
		proxies  []string
	}{
		{name: "nothing"},
		{name: "one service", change: func(s *mesh.Snapshot) { s.Services["other"] = &mesh.Service{Name: "other"} },
			services: []string{"other"}},
		{name: "service added and removed", change: func(s *mesh.Snapshot) {
			s.Services["new"] = &mesh.Service{Name: "new"}
			delete(s.Services, "db")
		}, services: []string{"db", "new"}},
		{name: "resolver written", change: func(s *mesh.Snapshot) { s.Config.Resolvers["db"] = &mesh.ServiceResolver{Name: "db"} },
			services: []string{"db"}},
		{name: "router deleted", change: func(s *mesh.Snapshot) { delete(s.Config.Routers, "api") },
			services: []string{"api"}},
		{name: "service-defaults and splitter", change: func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["db"] = &mesh.ServiceDefaults{Name: "db", Protocol: "http"}
			s.Config.Splitters["x"] = &mesh.ServiceSplitter{Name: "x"}
		}, services: []string{"db", "x"}},
		{name: "proxy registration marks the service it fronts", change: func(s *mesh.Snapshot) {
			p := *s.Proxies["a-sidecar-proxy"]
			p.Port++
			s.Proxies["a-sidecar-proxy"] = &p
		}, services: []string{"web"}, proxies: []string{"a-sidecar-proxy"}},
		{name: "proxy-defaults", change: func(s *mesh.Snapshot) { s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http"} }, all: true},
		{name: "datacenter", change: func(s *mesh.Snapshot) { s.Datacenter = "dc2" }, all: true},
		{name: "entry errors", change: func(s *mesh.Snapshot) {
			s.Config.Errors = append(s.Config.Errors, mesh.EntryError{Entry: mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: "db"}})
		}, all: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := diffModels(base, evolve(base, tc.change))
			if d.all != tc.all {
				t.Errorf("all = %v, want %v", d.all, tc.all)
			}
			if tc.all {
				return
			}
			keys := func(m map[string]bool) []string {
				var out []string
				for k := range m {
					out = append(out, k)
				}
				return out
			}
			if diff := cmp.Diff(tc.services, keys(d.services), cmpSorted); diff != "" {
				t.Errorf("services (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.proxies, keys(d.proxies), cmpSorted); diff != "" {
				t.Errorf("proxies (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("no previous model", func(t *testing.T) {
		if d := diffModels(nil, base); !d.all {
			t.Error("diff from nil: all = false")
		}
	})
}

// recordingTranslator records which sidecars were translated.
type recordingTranslator struct {
	fakeTranslator
	mu   sync.Mutex
	seen []string
}

func (r *recordingTranslator) Sidecar(snap *mesh.Snapshot, id string) (*cache.Snapshot, error) {
	r.mu.Lock()
	r.seen = append(r.seen, id)
	r.mu.Unlock()
	return r.fakeTranslator.Sidecar(snap, id)
}

func (r *recordingTranslator) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

// TestRebuildTranslatesOnlyAffectedSidecars: a model change re-translates
// exactly the sidecars whose inputs changed, following the chains as they
// are in the new model, and every sidecar on a global change. Each step
// starts from the previous step's model.
func TestRebuildTranslatesOnlyAffectedSidecars(t *testing.T) {
	src := newFakeSource(model(1, map[string][]string{
		"a-sidecar-proxy": {"api"},
		"b-sidecar-proxy": {"db"},
		"c-sidecar-proxy": {"cache"},
	}, map[string][]int{"api": {1}, "db": {2}, "cache": {3}, "db2": {4}, "other": {5}}))
	// Each fronts its own service, so that one's registration is no
	// other's input.
	for id, p := range src.Current().Proxies {
		p.DestinationService = strings.TrimSuffix(id, "-sidecar-proxy")
	}
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	tr := &recordingTranslator{}
	b := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: tr, metrics: m, workers: 2, nodes: map[string]*built{}}
	ctx := context.Background()
	for i, id := range []string{"a-sidecar-proxy", "b-sidecar-proxy", "c-sidecar-proxy"} {
		_ = st.OnStreamOpen(ctx, int64(i+1), "")
		if err := st.OnStreamRequest(int64(i+1), &discovery.DiscoveryRequest{Node: sidecarNode(id), TypeUrl: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	b.nodesChanged(ctx)
	b.rebuild(ctx)
	if got := tr.take(); len(got) != 3 {
		t.Fatalf("first build translated %v, want the 3 sidecars", got)
	}
	for _, step := range []struct {
		name   string
		change func(*mesh.Snapshot)
		want   []string
	}{
		{"unrelated service", func(s *mesh.Snapshot) { s.Services["other"] = &mesh.Service{Name: "other"} }, nil},
		{"an upstream's instances", func(s *mesh.Snapshot) { s.Services["db"] = &mesh.Service{Name: "db"} },
			[]string{"b-sidecar-proxy"}},
		{"resolver redirects api to db2", func(s *mesh.Snapshot) {
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Redirect: &mesh.ResolverRedirect{Service: "db2"}}}
		}, []string{"a-sidecar-proxy"}},
		{"the redirect's target", func(s *mesh.Snapshot) { s.Services["db2"] = &mesh.Service{Name: "db2"} },
			[]string{"a-sidecar-proxy"}},
		{"own registration", func(s *mesh.Snapshot) {
			p := *s.Proxies["c-sidecar-proxy"]
			p.Port++
			s.Proxies["c-sidecar-proxy"] = &p
		}, []string{"c-sidecar-proxy"}},
		{"proxy-defaults", func(s *mesh.Snapshot) { s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http"} },
			[]string{"a-sidecar-proxy", "b-sidecar-proxy", "c-sidecar-proxy"}},
		{"another upstream's instances", func(s *mesh.Snapshot) { s.Services["cache"] = &mesh.Service{Name: "cache"} },
			[]string{"c-sidecar-proxy"}},
	} {
		t.Run(step.name, func(t *testing.T) {
			src.Set(evolve(src.Current(), step.change))
			b.rebuild(ctx)
			if diff := cmp.Diff(step.want, tr.take(), cmpSorted); diff != "" {
				t.Errorf("translated (-want +got):\n%s", diff)
			}
			for id, e := range b.nodes {
				if e.model != src.Current() {
					t.Errorf("%s not marked up to date", id)
				}
			}
		})
	}
}
