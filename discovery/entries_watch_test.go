package discovery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

func ptr[T any](v T) *T { return &v }

// TestWatcherDecodesConfigEntries writes every supported kind with the real
// API and compares what the snapshot holds with the expected mesh types;
// then writes entries Consul accepts and we cannot use, and checks that
// they are reported while the previous good versions stay.
func TestWatcherDecodesConfigEntries(t *testing.T) {
	a := consultest.Start(t)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, zaptest.NewLogger(t))
	set := func(e api.ConfigEntry) {
		t.Helper()
		if ok, _, err := a.Client.ConfigEntries().Set(e, nil); err != nil || !ok {
			t.Fatalf("writing %s/%s: ok=%v err=%v", e.GetKind(), e.GetName(), ok, err)
		}
	}

	set(&api.ProxyConfigEntry{
		Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config:      map[string]any{"protocol": "http", "local_connect_timeout_ms": 1500},
		MeshGateway: api.MeshGatewayConfig{Mode: api.MeshGatewayModeLocal},
		Meta:        map[string]string{"owner": "platform"},
	})
	set(&api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "api", Protocol: "http"})
	set(&api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "api-backup", Protocol: "http"})
	set(&api.ServiceConfigEntry{
		Kind: api.ServiceDefaults, Name: "web", Protocol: "http",
		MaxInboundConnections: 100, LocalConnectTimeoutMs: 2000, LocalRequestTimeoutMs: 15000,
		Meta: map[string]string{"retry_budget": "0.2"},
		UpstreamConfig: &api.UpstreamConfiguration{
			Defaults: &api.UpstreamConfig{
				ConnectTimeoutMs: 750,
				Limits:           &api.UpstreamLimits{MaxConnections: ptr(50), MaxPendingRequests: ptr(10), MaxConcurrentRequests: ptr(20)},
				PassiveHealthCheck: &api.PassiveHealthCheck{
					Interval: 10 * time.Second, MaxFailures: 3,
					EnforcingConsecutive5xx: ptr(uint32(80)), MaxEjectionPercent: ptr(uint32(50)),
					BaseEjectionTime: ptr(45 * time.Second),
				},
			},
			Overrides: []*api.UpstreamConfig{{Name: "api", Protocol: "grpc", ConnectTimeoutMs: 250}},
		},
	})
	set(&api.ServiceResolverConfigEntry{
		Kind: api.ServiceResolver, Name: "api",
		DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1": {Filter: "Service.Meta.version == v1", OnlyPassing: true},
			"v2": {Filter: "Service.Meta.version == v2"},
		},
		Failover: map[string]api.ServiceResolverFailover{
			"*": {Targets: []api.ServiceResolverFailoverTarget{{Service: "api-backup"}, {Datacenter: "dc2"}}},
		},
		ConnectTimeout: 3 * time.Second,
		RequestTimeout: 20 * time.Second,
		LoadBalancer: &api.LoadBalancer{
			Policy:         "ring_hash",
			RingHashConfig: &api.RingHashConfig{MinimumRingSize: 1024, MaximumRingSize: 8192},
			HashPolicies: []api.HashPolicy{
				{Field: "header", FieldValue: "x-user", Terminal: true},
				{Field: "cookie", FieldValue: "session", CookieConfig: &api.CookieConfig{TTL: 30 * time.Second, Path: "/"}},
				{SourceIP: true},
			},
		},
		Meta: map[string]string{"owner": "api-team"},
	})
	set(&api.ServiceSplitterConfigEntry{
		Kind: api.ServiceSplitter, Name: "api",
		Splits: []api.ServiceSplit{
			{Weight: 90, ServiceSubset: "v1"},
			{Weight: 10, ServiceSubset: "v2", RequestHeaders: &api.HTTPHeaderModifiers{Set: map[string]string{"x-canary": "1"}}},
		},
	})
	goodRouter := &api.ServiceRouterConfigEntry{
		Kind: api.ServiceRouter, Name: "web",
		Routes: []api.ServiceRoute{
			{
				Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{
					PathPrefix: "/api/",
					Header:     []api.ServiceRouteHTTPMatchHeader{{Name: "x-debug", Present: true}, {Name: "x-env", Regex: "^(dev|qa)$", Invert: true}},
					QueryParam: []api.ServiceRouteHTTPMatchQueryParam{{Name: "beta", Exact: "1"}},
					Methods:    []string{"GET", "POST"},
				}},
				Destination: &api.ServiceRouteDestination{
					Service: "api", ServiceSubset: "v2", PrefixRewrite: "/",
					RequestTimeout: 5 * time.Second, IdleTimeout: time.Minute,
					NumRetries: 3, RetryOnConnectFailure: true,
					RetryOn: []string{"gateway-error", "reset"}, RetryOnStatusCodes: []uint32{503},
					ResponseHeaders: &api.HTTPHeaderModifiers{Remove: []string{"server"}},
				},
			},
			{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathRegex: "/v[0-9]+/.*"}}, Destination: &api.ServiceRouteDestination{Service: "api"}},
		},
	}
	set(goodRouter)

	want := mesh.Config{
		ProxyDefaults: &mesh.ProxyDefaults{
			Protocol:    "http",
			Config:      map[string]string{"protocol": "http", "local_connect_timeout_ms": "1500"},
			MeshGateway: "local",
			Meta:        map[string]string{"owner": "platform"},
		},
		ServiceDefaults: map[string]*mesh.ServiceDefaults{
			"api":        {Name: "api", Protocol: "http"},
			"api-backup": {Name: "api-backup", Protocol: "http"},
			"web": {
				Name: "web", Protocol: "http", MaxInboundConnections: 100,
				LocalConnectTimeout: 2 * time.Second, LocalRequestTimeout: 15 * time.Second,
				Meta: map[string]string{"retry_budget": "0.2"},
				UpstreamDefaults: &mesh.UpstreamConfig{
					ConnectTimeout: 750 * time.Millisecond,
					Limits:         &mesh.UpstreamLimits{MaxConnections: ptr(50), MaxPendingRequests: ptr(10), MaxConcurrentRequests: ptr(20)},
					PassiveHealthCheck: &mesh.PassiveHealthCheck{
						Interval: 10 * time.Second, MaxFailures: 3,
						EnforcingConsecutive5xx: ptr(uint32(80)), MaxEjectionPercent: ptr(uint32(50)),
						BaseEjectionTime: ptr(45 * time.Second),
					},
				},
				UpstreamOverrides: []mesh.UpstreamConfig{{Name: "api", Protocol: "grpc", ConnectTimeout: 250 * time.Millisecond}},
			},
		},
		Resolvers: map[string]*mesh.ServiceResolver{"api": {
			Name: "api", DefaultSubset: "v1",
			Subsets: map[string]mesh.ResolverSubset{
				"v1": {Filter: "Service.Meta.version == v1", OnlyPassing: true},
				"v2": {Filter: "Service.Meta.version == v2"},
			},
			Failover: map[string]mesh.ResolverFailover{
				"*": {Targets: []mesh.FailoverTarget{{Service: "api-backup"}, {Datacenter: "dc2"}}},
			},
			ConnectTimeout: 3 * time.Second, RequestTimeout: 20 * time.Second,
			LoadBalancer: &mesh.LoadBalancer{
				Policy:         "ring_hash",
				RingHashConfig: &mesh.RingHashConfig{MinimumRingSize: 1024, MaximumRingSize: 8192},
				HashPolicies: []mesh.HashPolicy{
					{Field: "header", FieldValue: "x-user", Terminal: true},
					{Field: "cookie", FieldValue: "session", CookieConfig: &mesh.CookieConfig{TTL: 30 * time.Second, Path: "/"}},
					{SourceIP: true},
				},
			},
			Meta: map[string]string{"owner": "api-team"},
		}},
		Splitters: map[string]*mesh.ServiceSplitter{"api": {
			Name: "api",
			Splits: []mesh.Split{
				{Weight: 90, ServiceSubset: "v1"},
				{Weight: 10, ServiceSubset: "v2", RequestHeaders: &mesh.HeaderModifiers{Set: map[string]string{"x-canary": "1"}}},
			},
		}},
		Routers: map[string]*mesh.ServiceRouter{"web": {
			Name: "web",
			Routes: []mesh.Route{
				{
					Match: &mesh.RouteMatch{
						PathPrefix: "/api/",
						Header:     []mesh.HeaderMatch{{Name: "x-debug", Present: true}, {Name: "x-env", Regex: "^(dev|qa)$", Invert: true}},
						QueryParam: []mesh.QueryMatch{{Name: "beta", Exact: "1"}},
						Methods:    []string{"GET", "POST"},
					},
					Destination: &mesh.RouteDestination{
						Service: "api", ServiceSubset: "v2", PrefixRewrite: "/",
						RequestTimeout: 5 * time.Second, IdleTimeout: time.Minute,
						NumRetries: 3, RetryOnConnectFailure: true,
						RetryOn: []string{"gateway-error", "reset"}, RetryOnStatusCodes: []uint32{503},
						ResponseHeaders: &mesh.HeaderModifiers{Remove: []string{"server"}},
					},
				},
				{Match: &mesh.RouteMatch{PathRegex: "/v[0-9]+/.*"}, Destination: &mesh.RouteDestination{Service: "api"}},
			},
		}},
	}
	s := waitSnapshot(t, w, 15*time.Second, "all config entries", func(s *mesh.Snapshot) bool {
		return s.Config.Routers["web"] != nil && s.Config.Splitters["api"] != nil && s.Config.Resolvers["api"] != nil &&
			s.Config.ServiceDefaults["web"] != nil && s.Config.ProxyDefaults != nil
	})
	if diff := cmp.Diff(want, s.Config); diff != "" {
		t.Fatalf("decoded config (-want +got):\n%s", diff)
	}

	// Entries Consul accepts and we cannot use: a look-ahead (not RE2) and
	// an unknown protocol. Each is reported; the last good version stays.
	bad := *goodRouter
	bad.Routes = []api.ServiceRoute{{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathRegex: "/(?!admin).*"}}}}
	set(&bad)
	set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "htpp"}})
	s = waitSnapshot(t, w, 15*time.Second, "two config errors", func(s *mesh.Snapshot) bool { return len(s.Config.Errors) == 2 })
	wantErrs := []mesh.EntryError{
		{Entry: mesh.EntryRef{Kind: mesh.KindProxyDefaults, Name: "global"}, Field: "Config.protocol"},
		{Entry: mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: "web"}, Field: "Routes[0].Match.HTTP.PathRegex"},
	}
	if diff := cmp.Diff(wantErrs, s.Config.Errors, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("config errors (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, s.Config, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Errors" }, cmp.Ignore())); diff != "" {
		t.Errorf("last good config not kept (-want +got):\n%s", diff)
	}

	// Fixing the entry clears its error and publishes the new version.
	set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "grpc"}})
	waitSnapshot(t, w, 15*time.Second, "fixed proxy-defaults", func(s *mesh.Snapshot) bool {
		return len(s.Config.Errors) == 1 && s.Config.ProxyDefaults.Protocol == "grpc"
	})
	// Deleting an entry removes it.
	if _, err := a.Client.ConfigEntries().Delete(api.ServiceRouter, "web", nil); err != nil {
		t.Fatalf("delete router: %v", err)
	}
	waitSnapshot(t, w, 15*time.Second, "router gone", func(s *mesh.Snapshot) bool {
		return s.Config.Routers["web"] == nil && len(s.Config.Errors) == 0
	})
}
