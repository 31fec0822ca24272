package xds

import (
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// proxylessPolicyMesh: api (grpc) has a router, a splitter and a resolver
// using features grpc-go supports and some it does not.
func proxylessPolicyMesh(s *mesh.Snapshot) {
	policyMesh(s, "grpc")
	s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(),
		LoadBalancer: &mesh.LoadBalancer{Policy: "maglev", HashPolicies: []mesh.HashPolicy{
			{Field: "header", FieldValue: "x-user"}, {SourceIP: true},
		}},
		Meta: map[string]string{KeyFailurePercentageThreshold: "60", KeyConsecutiveGatewayFailure: "2"},
	}}
	s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
		{
			Match:       &mesh.RouteMatch{PathPrefix: "/pkg.Greeter/", Header: []mesh.HeaderMatch{{Name: "x-canary", Exact: "1"}}},
			Destination: &mesh.RouteDestination{ServiceSubset: "v2", RetryOn: []string{"unavailable", "5xx", "cancelled"}, RequestTimeout: time.Second},
		},
		{
			Match:       &mesh.RouteMatch{QueryParam: []mesh.QueryMatch{{Name: "q", Present: true}}},
			Destination: &mesh.RouteDestination{ServiceSubset: "v1"},
		},
		{
			Match:       &mesh.RouteMatch{PathExact: "/pkg.Greeter/Reset"},
			Destination: &mesh.RouteDestination{ServiceSubset: "v1", NumRetries: 4, RetryOn: []string{"reset"}, PrefixRewrite: "/x"},
		},
	}}}
	s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{
		{Weight: 75, ServiceSubset: "v1"}, {Weight: 25, ServiceSubset: "v2", RequestHeaders: &mesh.HeaderModifiers{Set: map[string]string{"x": "y"}}},
	}}}
}

func TestForProxylessPolicyGolden(t *testing.T) {
	snap := testMesh()
	proxylessPolicyMesh(snap)
	res, err := ForProxyless(snap)
	if err != nil {
		t.Fatalf("ForProxyless: %v", err)
	}
	checkGolden(t, "proxyless_policy_router_splitter_resolver", renderGolden(t, res))

	var got []string
	for _, w := range res.Warnings() {
		got = append(got, w.String())
	}
	want := []string{
		"routes api (from service-router/api): RequestTimeout is not applied by grpc-go (set a deadline on the call): left out",
		"routes api (from service-router/api): retry conditions 5xx are not gRPC status codes and are ignored by grpc-go",
		"routes api (from service-resolver/api): only header hash policies are applied by grpc-go: others left out",
		"routes api (from service-router/api): a route matching query parameters is ignored by grpc-go: left out",
		"routes api (from service-router/api): PrefixRewrite is not applied by grpc-go: left out",
		"routes api (from service-router/api): retry conditions reset are not gRPC status codes and are ignored by grpc-go",
		"routes api (from service-router/api): no gRPC retry condition (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable): retries left out",
		"routes api (from service-splitter/api): split RequestHeaders/ResponseHeaders are not applied by grpc-go: left out",
		"clusters v1.api.default.dc1.internal (from service-resolver/api): LoadBalancer.Policy maglev is not supported by grpc-go (NACKed): ring_hash instead",
		"clusters v1.api.default.dc1.internal: consecutive gateway failure ejection is not applied by grpc-go",
		"clusters v2.api.default.dc1.internal (from service-resolver/api): LoadBalancer.Policy maglev is not supported by grpc-go (NACKed): ring_hash instead",
		"clusters v2.api.default.dc1.internal: consecutive gateway failure ejection is not applied by grpc-go",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestProxylessMergesLegsOfOneCluster: grpc-go keys weighted clusters by
// name, so legs reaching one cluster (differing only by header changes,
// which grpc-go does not apply) become one.
func TestProxylessMergesLegsOfOneCluster(t *testing.T) {
	snap := testMesh()
	policyMesh(snap, "grpc")
	snap.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets()}}
	snap.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{
		{Weight: 30, ServiceSubset: "v1", RequestHeaders: &mesh.HeaderModifiers{Set: map[string]string{"leg": "a"}}},
		{Weight: 30, ServiceSubset: "v1", RequestHeaders: &mesh.HeaderModifiers{Set: map[string]string{"leg": "b"}}},
		{Weight: 40, ServiceSubset: "v2"},
	}}}
	res, err := ForProxyless(snap)
	if err != nil {
		t.Fatal(err)
	}
	{
		got := map[string]uint32{}
		for _, cw := range res.routeOf("api").GetRoute().GetWeightedClusters().GetClusters() {
			got[cw.GetName()] += cw.GetWeight().GetValue()
			if len(cw.RequestHeadersToAdd) > 0 {
				t.Errorf("%s keeps header changes", cw.GetName())
			}
		}
		want := map[string]uint32{"v1.api.default.dc1.internal": 6000, "v2.api.default.dc1.internal": 4000}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("weights (-want +got):\n%s", diff)
		}
		if n := len(res.routeOf("api").GetRoute().GetWeightedClusters().GetClusters()); n != 2 {
			t.Errorf("%d weighted clusters, want 2 (one per name)", n)
		}
	}
}

// TestPolicyEntryErrors: an entry we cannot apply fails the translation of
// every proxy whose chains use it (so the control plane keeps its last
// good resources) with an EntryError naming the entry and the field.
func TestPolicyEntryErrors(t *testing.T) {
	tests := []struct {
		name      string
		change    func(s *mesh.Snapshot)
		entry     string
		field     string
		errSubstr string
	}{
		{
			name: "splitter weights do not sum to 100",
			change: func(s *mesh.Snapshot) {
				s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 60}, {Weight: 30, Service: "api-canary"}}}}
			},
			entry: "service-splitter/api", field: "Splits", errSubstr: "weights sum to 90.00, want 100",
		},
		{
			name: "path regex RE2 cannot compile",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{{Match: &mesh.RouteMatch{PathRegex: "/(?!admin)"}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Match.HTTP.PathRegex", errSubstr: "not an RE2 regular expression",
		},
		{
			name: "header regex RE2 cannot compile",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{{Match: &mesh.RouteMatch{
					Header: []mesh.HeaderMatch{{Name: "a", Exact: "b"}, {Name: "x", Regex: "(?<=a)b"}}}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Match.HTTP.Header[1].Regex", errSubstr: "not an RE2",
		},
		{
			name: "subset filter we cannot evaluate",
			change: func(s *mesh.Snapshot) {
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", DefaultSubset: "v1",
					Subsets: map[string]mesh.ResolverSubset{"v1": {Filter: `Checks.Status == passing`}}}}
			},
			entry: "service-resolver/api", field: "Subsets[v1].Filter", errSubstr: `unknown selector "Checks.Status"`,
		},
		{
			name: "router destination subset does not exist",
			change: func(s *mesh.Snapshot) {
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets()}}
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
					{Match: &mesh.RouteMatch{PathPrefix: "/"}, Destination: &mesh.RouteDestination{ServiceSubset: "v3"}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Destination", errSubstr: `subset "v3" is not defined in service-resolver/api`,
		},
		{
			name: "split subset without any resolver",
			change: func(s *mesh.Snapshot) {
				s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 100, ServiceSubset: "v1"}}}}
			},
			entry: "service-splitter/api", field: "Splits[0]", errSubstr: "has no service-resolver",
		},
		{
			name: "failover subset does not exist",
			change: func(s *mesh.Snapshot) {
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(),
					Failover: map[string]mesh.ResolverFailover{"*": {ServiceSubset: "gone"}}}}
			},
			entry: "service-resolver/api", field: "Failover[*]", errSubstr: `subset "gone" is not defined`,
		},
		{
			name: "unknown extension key in router Meta",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Meta: map[string]string{"consulate_retry_backof_base": "1s"}}}
			},
			entry: "service-router/api", field: "Meta[consulate_retry_backof_base]", errSubstr: "unknown extension key",
		},
		{
			name: "cluster key in router Meta",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Meta: map[string]string{KeyMaxEjectionTime: "1m"}}}
			},
			entry: "service-router/api", field: "Meta[consulate_max_ejection_time]", errSubstr: "does not apply to a service-router entry",
		},
		{
			name: "extension key in splitter Meta",
			change: func(s *mesh.Snapshot) {
				s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Meta: map[string]string{KeyRetryPerTryTimeout: "1s"},
					Splits: []mesh.Split{{Weight: 100}}}}
			},
			entry: "service-splitter/api", field: "Meta[consulate_retry_per_try_timeout]", errSubstr: "does not apply",
		},
		{
			name: "bad extension value in resolver Meta",
			change: func(s *mesh.Snapshot) {
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Meta: map[string]string{KeyHealthyPanicThreshold: "150"}}}
			},
			entry: "service-resolver/api", field: "Meta[consulate_healthy_panic_threshold]", errSubstr: "not a percentage",
		},
		{
			name: "bad extension value in proxy-defaults Config",
			change: func(s *mesh.Snapshot) {
				s.Config.ProxyDefaults = &mesh.ProxyDefaults{Config: map[string]string{KeyRetryBackoffBase: "soon"}}
			},
			entry: "proxy-defaults/global", field: "Config[consulate_retry_backoff_base]", errSubstr: "not a positive duration",
		},
		{
			name: "back-off max below base",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api",
					Meta:   map[string]string{KeyRetryBackoffBase: "1s", KeyRetryBackoffMax: "100ms"},
					Routes: []mesh.Route{{Destination: &mesh.RouteDestination{NumRetries: 1}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Destination", errSubstr: "is below",
		},
		{
			name: "unknown RetryOn condition",
			change: func(s *mesh.Snapshot) {
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
					{Destination: &mesh.RouteDestination{RetryOn: []string{"5xx", "sometimes"}}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Destination", errSubstr: `unknown condition "sometimes"`,
		},
		{
			name: "route to a service of another protocol",
			change: func(s *mesh.Snapshot) {
				setProtocol(s, "api-canary", "tcp")
				s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
					{Destination: &mesh.RouteDestination{Service: "api-canary"}}}}}
			},
			entry: "service-router/api", field: "Routes[0].Destination", errSubstr: "speaks tcp but the chain it is reached from speaks http",
		},
		{
			name: "registration upstream limits with an unknown key",
			change: func(s *mesh.Snapshot) {
				proxy(s).Upstreams[0].Config = map[string]string{"limits": `{"max_conections":5}`}
			},
			errSubstr: `unknown field "max_conections"`,
		},
		{
			name: "redirect loop",
			change: func(s *mesh.Snapshot) {
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{
					"api":        {Name: "api", Redirect: &mesh.ResolverRedirect{Service: "api-canary"}},
					"api-canary": {Name: "api-canary", Redirect: &mesh.ResolverRedirect{Service: "api"}},
				}
			},
			entry: "service-resolver/api", field: "Redirect", errSubstr: "a loop?",
		},
		{
			name: "splitter loop",
			change: func(s *mesh.Snapshot) {
				s.Config.Splitters = map[string]*mesh.ServiceSplitter{
					"api":        {Name: "api", Splits: []mesh.Split{{Weight: 100, Service: "api-canary"}}},
					"api-canary": {Name: "api-canary", Splits: []mesh.Split{{Weight: 100, Service: "api"}}},
				}
			},
			entry: "service-splitter/", field: "Splits", errSubstr: "a loop?",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			policyMesh(snap, "http")
			tt.change(snap)
			_, err := ForSidecar(snap, testProxy)
			if err == nil {
				t.Fatal("ForSidecar succeeded, want an error")
			}
			if tt.entry == "" { // not a config entry: the proxy registration
				if !strings.Contains(err.Error(), tt.errSubstr) || EntryErrors(err) != nil {
					t.Errorf("error = %v, want a registration error containing %q", err, tt.errSubstr)
				}
				return
			}
			ee := EntryErrors(err)
			if ee == nil {
				t.Fatalf("error %v wraps no EntryError", err)
			}
			if !strings.HasPrefix(ee.Entry.String(), tt.entry) || ee.Field != tt.field || !strings.Contains(ee.Err.Error(), tt.errSubstr) {
				t.Errorf("EntryError = {%s %q %q}, want {%s %q ...%q...}", ee.Entry, ee.Field, ee.Err, tt.entry, tt.field, tt.errSubstr)
			}
			if !strings.Contains(err.Error(), testProxy) {
				t.Errorf("error %q does not name the proxy", err)
			}
		})
	}
}

// TestPolicyOnlyReachedTargets: a proxy receives the clusters of the
// targets its chains reach and nothing more (other subsets of a resolver,
// other services' entries).
func TestPolicyOnlyReachedTargets(t *testing.T) {
	snap := testMesh()
	policyMesh(snap, "http")
	snap.Config.Resolvers = map[string]*mesh.ServiceResolver{
		"api":        {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v2"},
		"api-canary": {Name: "api-canary", Subsets: apiSubsets()},
	}
	snap.Config.Routers = map[string]*mesh.ServiceRouter{"api-canary": {Name: "api-canary", Routes: []mesh.Route{
		{Destination: &mesh.RouteDestination{ServiceSubset: "v1"}}}}}
	res, err := ForSidecar(snap, testProxy)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"local_app", "v2.api.default.dc1.internal"}
	if diff := cmp.Diff(want, res.Names("type.googleapis.com/envoy.config.cluster.v3.Cluster")); diff != "" {
		t.Errorf("clusters (-want +got):\n%s", diff)
	}
}

// routeOf returns the last route (the default one) of route configuration
// name.
func (r *Resources) routeOf(name string) *routev3.Route {
	for _, item := range r.Items(resource.RouteType) {
		if rc := item.(*routev3.RouteConfiguration); rc.GetName() == name {
			routes := rc.GetVirtualHosts()[0].GetRoutes()
			return routes[len(routes)-1]
		}
	}
	return nil
}
