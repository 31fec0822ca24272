package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// routed is a snapshot whose route configuration "r" splits over clusters,
// each with its load assignment.
func routed(t testing.TB, clusters ...string) *cache.Snapshot {
	t.Helper()
	s, err := routedSnapshot(clusters)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func routedSnapshot(clusters []string) (*cache.Snapshot, error) {
	var cs, es []types.Resource
	wc := &routev3.WeightedCluster{}
	for _, c := range clusters {
		cs = append(cs, &clusterv3.Cluster{Name: c, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
		es = append(es, &endpointv3.ClusterLoadAssignment{ClusterName: c})
		wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: c, Weight: wrapperspb.UInt32(1)})
	}
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "vh", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}}}}}}}}
	key := strings.Join(clusters, ",")
	s := &cache.Snapshot{}
	s.Resources[types.Cluster] = cache.NewResources("c:"+key, cs)
	s.Resources[types.Endpoint] = cache.NewResources("e:"+key, es)
	s.Resources[types.Route] = cache.NewResources("r:"+key, []types.Resource{rc})
	s.Resources[types.Listener] = cache.NewResources("l", nil)
	return s, s.ConstructVersionMap()
}

func clusterNames(s *cache.Snapshot) []string {
	var out []string
	for n := range s.Resources[types.Cluster].Items {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func routeClusters(s *cache.Snapshot) []string {
	var out []string
	for _, r := range s.Resources[types.Route].Items {
		for _, vh := range r.Resource.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, c := range rt.GetRoute().GetWeightedClusters().GetClusters() {
					out = append(out, c.GetName())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestPlanSteps(t *testing.T) {
	type step struct{ Clusters, Routed []string }
	tests := []struct {
		name     string
		cur, tgt []string
		want     []step
	}{
		{"first snapshot", nil, []string{"a"}, []step{{[]string{"a"}, []string{"a"}}}},
		{"same clusters", []string{"a", "b"}, []string{"a", "b"}, []step{{[]string{"a", "b"}, []string{"a", "b"}}}},
		{"cluster added: clusters first, then the route", []string{"a"}, []string{"a", "b"},
			[]step{{[]string{"a", "b"}, []string{"a"}}, {[]string{"a", "b"}, []string{"a", "b"}}}},
		{"cluster removed: the route first, then the cluster", []string{"a", "b"}, []string{"a"},
			[]step{{[]string{"a", "b"}, []string{"a"}}, {[]string{"a"}, []string{"a"}}}},
		{"cluster replaced: add, switch, remove", []string{"a"}, []string{"b"},
			[]step{{[]string{"a", "b"}, []string{"a"}}, {[]string{"a", "b"}, []string{"b"}}, {[]string{"b"}, []string{"b"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur *cache.Snapshot
			if tt.cur != nil {
				cur = routed(t, tt.cur...)
			}
			tgt := routed(t, tt.tgt...)
			steps := planSteps(cur, tgt)
			var got []step
			for _, s := range steps {
				for _, c := range routeClusters(s) {
					_, hasCluster := s.Resources[types.Cluster].Items[c]
					_, hasEndpoints := s.Resources[types.Endpoint].Items[c]
					if !hasCluster || !hasEndpoints {
						t.Errorf("a step routes to %s without its cluster (%v) or endpoints (%v)", c, hasCluster, hasEndpoints)
					}
				}
				got = append(got, step{clusterNames(s), routeClusters(s)})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if steps[len(steps)-1] != tgt {
				t.Error("the last step is not the target itself")
			}
		})
	}
}

// TestUnionKeepsVersionOfEqualContent: a union step whose content is the
// snapshot already set keeps its version, so nothing is re-sent.
func TestUnionKeepsVersionOfEqualContent(t *testing.T) {
	cur, tgt := routed(t, "a", "b"), routed(t, "a")
	steps := planSteps(cur, tgt)
	if got := steps[0].Resources[types.Cluster].Version; got != cur.Resources[types.Cluster].Version {
		t.Errorf("union of {a,b} and {a} has cluster version %q, want the current %q", got, cur.Resources[types.Cluster].Version)
	}
}

// scriptedTranslator routes the sidecar over the clusters its model's index
// names.
type scriptedTranslator struct{ byIndex map[uint64][]string }

func (s scriptedTranslator) Sidecar(snap *mesh.Snapshot, _ string) (*cache.Snapshot, error) {
	cs, ok := s.byIndex[snap.Index]
	if !ok {
		return nil, fmt.Errorf("no script for index %d", snap.Index)
	}
	return routedSnapshot(cs)
}

func (scriptedTranslator) Proxyless(*mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	return nil, nil, fmt.Errorf("not used")
}

// TestMakeBeforeBreak: across changes that add, replace and remove
// clusters, a client never holds a route naming a cluster it does not
// have, or an EDS cluster without its endpoints, over SotW and Delta. (Set
// at once, the route and the clusters race: go-control-plane answers a
// node's watches in no particular order.)
func TestMakeBeforeBreak(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	script := [][]string{{"a"}, {"a", "b"}, {"b"}, {"c"}, {"a", "c"}, {"a"}, {"b", "c"}, {"a"}, {"d"}, {"a", "d"}, {"b"}}
	tr := scriptedTranslator{byIndex: map[uint64][]string{}}
	for i, cs := range script {
		tr.byIndex[uint64(i+1)] = cs
	}
	proxies := map[string][]string{id: {"api"}}
	services := map[string][]int{"api": {8080}}
	for _, protocol := range []string{"sotw", "delta"} {
		t.Run(protocol, func(t *testing.T) {
			src := newFakeSource(model(1, proxies, services))
			ts := startServerWith(t, src, tr, Options{})
			m := adstest.NewMirror(t, adstest.Dial(t, ts.addr), sidecarNode(id), protocol,
				adstest.ClusterType, adstest.EndpointType, adstest.RouteType)
			check := func(v adstest.View) error {
				for _, c := range routedIn(v) {
					if _, ok := v.Resources[adstest.ClusterType][c]; !ok {
						return fmt.Errorf("route names cluster %s, which the client does not have", c)
					}
					if _, ok := v.Resources[adstest.EndpointType][c]; !ok {
						return fmt.Errorf("route names cluster %s, whose endpoints the client does not have", c)
					}
				}
				return nil
			}
			for i, want := range script {
				if i > 0 {
					src.Set(model(uint64(i+1), proxies, services))
				}
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				_, err := m.WaitFor(ctx, fmt.Sprintf("step %d: routes and clusters %v", i+1, want), func(v adstest.View) bool {
					names := v.Names(adstest.ClusterType)
					slices.Sort(names)
					return slices.Equal(routedIn(v), want) && slices.Equal(names, want)
				})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					// The first configuration arrives in the order the
					// client subscribed (Envoy asks for clusters first);
					// what the server orders is each change after it.
					m.SetCheck(check)
				}
			}
			if v := m.Violations(); len(v) > 0 {
				t.Errorf("the client's config was inconsistent %d times:\n%s", len(v), strings.Join(v, "\n"))
			}
			// A client that answers everything never makes a step wait
			// for its deadline.
			answered := value(ts.metrics.StagedSteps.WithLabelValues("answered"))
			timeouts := value(ts.metrics.StagedSteps.WithLabelValues("timeout"))
			if answered == 0 || timeouts != 0 {
				t.Errorf("staged steps: %v answered, %v timed out; want some answered and none timed out", answered, timeouts)
			}
		})
	}
}

// routedIn lists the clusters route configuration "r" names in a view.
func routedIn(v adstest.View) []string {
	rc := &routev3.RouteConfiguration{}
	if !v.Decode(adstest.RouteType, "r", rc) {
		return nil
	}
	var out []string
	for _, vh := range rc.GetVirtualHosts() {
		for _, rt := range vh.GetRoutes() {
			for _, c := range rt.GetRoute().GetWeightedClusters().GetClusters() {
				out = append(out, c.GetName())
			}
		}
	}
	slices.Sort(out)
	return out
}
