package xdsclient

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

func mustResource(t *testing.T, typeURL string, m proto.Message) *resource {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeResource(typeURL, "", a)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestBuildWaitsForReferences checks the warming rule: a config is built
// only when every referenced route configuration, cluster and load
// assignment is present.
func TestBuildWaitsForReferences(t *testing.T) {
	listener := mustResource(t, ListenerType, dt.HTTPListener("public", "127.0.0.1", 1, "web"))
	tcp := mustResource(t, ListenerType, dt.TCPListener("db", "127.0.0.1", 2, "db"))
	route := mustResource(t, RouteType, dt.Route("web", "web"))
	eds := mustResource(t, ClusterType, dt.EDSCluster("web"))
	static := mustResource(t, ClusterType, dt.StaticCluster("db", dt.HostPort{Host: "127.0.0.1", Port: 3}))
	cla := mustResource(t, EndpointType, dt.CLA("web", dt.HostPort{Host: "127.0.0.1", Port: 4}))

	set := func(rs ...*resource) map[string]*resource {
		m := map[string]*resource{}
		for _, r := range rs {
			m[r.name] = r
		}
		return m
	}
	tests := []struct {
		name        string
		l, r, c, e  map[string]*resource
		noLDS       bool
		wantMissing []string
	}{
		{name: "complete", l: set(listener, tcp), r: set(route), c: set(eds, static), e: set(cla)},
		{name: "no listener response yet", noLDS: true, c: set(static), wantMissing: []string{"listeners (no response yet)"}},
		{name: "route missing", l: set(listener), c: set(eds), e: set(cla), wantMissing: []string{`route "web"`}},
		{name: "endpoints missing", l: set(listener), r: set(route), c: set(eds), wantMissing: []string{`endpoint "web"`}},
		{name: "cluster missing", l: set(listener, tcp), r: set(route), c: set(eds), e: set(cla), wantMissing: []string{`cluster "db"`}},
		{name: "empty is complete", l: set(), c: set()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore()
			if !tc.noLDS {
				s = s.with(ListenerType, tc.l, "1")
			}
			s = s.with(ClusterType, tc.c, "1").with(RouteType, tc.r, "1").with(EndpointType, tc.e, "1")
			cfg, refs := s.build(nil)
			var missing []string
			for _, r := range refs {
				missing = append(missing, r.String())
			}
			if diff := cmp.Diff(tc.wantMissing, missing); diff != "" {
				t.Fatalf("missing (-want +got):\n%s", diff)
			}
			if (cfg == nil) != (len(tc.wantMissing) > 0) {
				t.Fatalf("cfg = %v with missing %v", cfg, missing)
			}
			if cfg != nil && len(cfg.Listeners) != len(tc.l) {
				t.Errorf("config has %d listeners, want %d", len(cfg.Listeners), len(tc.l))
			}
		})
	}
}

// TestBuildGivesUpAfterFetchTimeout checks that refs past their initial
// fetch timeout no longer block: an empty route configuration, a cluster
// without endpoints, no cluster at all.
func TestBuildGivesUpAfterFetchTimeout(t *testing.T) {
	s := newStore().
		with(ListenerType, map[string]*resource{
			"public": mustResource(t, ListenerType, dt.HTTPListener("public", "127.0.0.1", 1, "web")),
			"db":     mustResource(t, ListenerType, dt.TCPListener("db", "127.0.0.1", 2, "db")),
		}, "1").
		with(ClusterType, map[string]*resource{"api": mustResource(t, ClusterType, dt.EDSCluster("api"))}, "1")
	giveUp := map[ref]bool{{RouteType, "web"}: true, {EndpointType, "api"}: true, {ClusterType, "db"}: true}
	cfg, missing := s.build(giveUp)
	if cfg == nil {
		t.Fatalf("still missing %v", missing)
	}
	if rc := cfg.Routes["web"]; rc == nil || len(rc.VirtualHosts) != 0 {
		t.Errorf("route web = %+v, want an empty route configuration", rc)
	}
	if c := cfg.Clusters["api"]; c == nil || len(c.Endpoints) != 0 {
		t.Errorf("cluster api = %+v, want present without endpoints", c)
	}
	if _, ok := cfg.Clusters["db"]; ok {
		t.Errorf("cluster db invented")
	}
}

func TestFetchTimeoutFromConfigSource(t *testing.T) {
	c := dt.EDSCluster("api")
	c.EdsClusterConfig.EdsConfig.InitialFetchTimeout = durationpb.New(0)
	l := dt.HTTPListener("public", "127.0.0.1", 1, "web")
	s := newStore().
		with(ListenerType, map[string]*resource{"public": mustResource(t, ListenerType, l)}, "1").
		with(ClusterType, map[string]*resource{"api": mustResource(t, ClusterType, c)}, "1")
	for _, tc := range []struct {
		r    ref
		want time.Duration
	}{
		{ref{RouteType, "web"}, 15 * time.Second},
		{ref{EndpointType, "api"}, 0},
		{ref{ClusterType, "x"}, 15 * time.Second},
	} {
		if got := s.fetchTimeout(tc.r); got != tc.want {
			t.Errorf("fetchTimeout(%v) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestPruneDropsUnreferenced(t *testing.T) {
	s := newStore().
		with(ListenerType, map[string]*resource{}, "1").
		with(ClusterType, map[string]*resource{}, "1").
		with(RouteType, map[string]*resource{"web": mustResource(t, RouteType, dt.Route("web", "web"))}, "1").
		with(EndpointType, map[string]*resource{"web": mustResource(t, EndpointType, dt.CLA("web"))}, "1")
	p := s.prune()
	if len(p.byType[RouteType]) != 0 || len(p.byType[EndpointType]) != 0 {
		t.Fatalf("unreferenced resources kept: %d routes, %d endpoints", len(p.byType[RouteType]), len(p.byType[EndpointType]))
	}
	if len(s.byType[RouteType]) != 1 {
		t.Fatalf("prune mutated its input")
	}
}

func TestBackoffIsCappedFullJitter(t *testing.T) {
	b := backoff{base: 100, max: 1000}
	for attempt := range 40 {
		limit := min(int64(100)<<min(attempt, 20), 1000)
		for range 50 {
			if d := b.delay(attempt); d < 0 || int64(d) >= limit {
				t.Fatalf("delay(%d) = %d, want in [0, %d)", attempt, d, limit)
			}
		}
	}
}

// TestFetchTimeoutSharedName checks the per-store timeout index: several
// EDS clusters naming one load assignment wait the shortest positive
// initial_fetch_timeout among them (0, wait forever, only when none is
// positive), and a new cluster set is seen by the store built from it,
// not by the one before.
func TestFetchTimeoutSharedName(t *testing.T) {
	cluster := func(name, service string, timeout time.Duration) *resource {
		c := dt.EDSCluster(name)
		c.EdsClusterConfig.ServiceName = service
		c.EdsClusterConfig.EdsConfig.InitialFetchTimeout = durationpb.New(timeout)
		return mustResource(t, ClusterType, c)
	}
	s := newStore().with(ClusterType, map[string]*resource{
		"a": cluster("a", "shared", 0),
		"b": cluster("b", "shared", 5*time.Second),
		"c": cluster("c", "shared", 3*time.Second),
		"d": cluster("d", "forever", 0),
		"e": cluster("e", "forever", 0),
	}, "1")
	for _, tc := range []struct {
		name string
		r    ref
		want time.Duration
	}{
		{name: "shortest positive wins", r: ref{EndpointType, "shared"}, want: 3 * time.Second},
		{name: "all zero waits forever", r: ref{EndpointType, "forever"}, want: 0},
		{name: "unreferenced", r: ref{EndpointType, "nobody"}, want: 0},
		{name: "route without listeners", r: ref{RouteType, "web"}, want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.fetchTimeout(tc.r); got != tc.want {
				t.Errorf("fetchTimeout(%v) = %v, want %v", tc.r, got, tc.want)
			}
		})
	}
	n := s.with(ClusterType, map[string]*resource{"a": cluster("a", "shared", time.Second)}, "2")
	if got := n.fetchTimeout(ref{EndpointType, "shared"}); got != time.Second {
		t.Errorf("after a new cluster set: fetchTimeout = %v, want 1s", got)
	}
	if got := s.fetchTimeout(ref{EndpointType, "shared"}); got != 3*time.Second {
		t.Errorf("the older store: fetchTimeout = %v, want 3s", got)
	}
}
