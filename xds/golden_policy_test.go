package xds

import (
	"time"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Fixture additions for the config-entry (policy) scenarios: api's
// instances carry version meta (v1 on node-2, v2 on node-3) and tags, its
// sidecars are registered proxies fronting them (so subset filters are
// evaluated against the fronted instance), and api-canary is another
// HTTP service in the mesh.

func policyMesh(s *mesh.Snapshot, protocol string) {
	for _, name := range []string{"web", "api", "api-canary"} {
		setProtocol(s, name, protocol)
	}
	api := s.Services["api"]
	api.Instances[0].Meta = map[string]string{"version": "v1"}
	api.Instances[0].Tags = []string{"stable"}
	api.Instances[1].Meta = map[string]string{"version": "v2"}
	api.Instances[1].Tags = []string{"canary"}
	for i, sc := range api.Sidecars {
		s.Proxies[sc.ID] = &mesh.Proxy{ID: sc.ID, Name: "api-sidecar-proxy", Node: sc.Node, Address: sc.Address, Port: sc.Port,
			DestinationService: "api", DestinationServiceID: api.Instances[i].ID, LocalServicePort: 8080}
	}
	s.Services["api-canary"] = &mesh.Service{
		Name:      "api-canary",
		Instances: []mesh.Instance{instance("api-canary", "api-canary-1", "node-8", "10.0.0.8", 8080, mesh.HealthPassing)},
		Sidecars:  []mesh.Instance{instance("api-canary-sidecar-proxy", "api-canary-1-sidecar-proxy", "node-8", "10.0.0.8", 21000, mesh.HealthPassing)},
	}
}

func apiSubsets() map[string]mesh.ResolverSubset {
	return map[string]mesh.ResolverSubset{
		"v1": {Filter: `Service.Meta.version == v1`},
		"v2": {Filter: `Service.Meta.version == "v2" and canary in Service.Tags`, OnlyPassing: true},
	}
}

func u32p(v uint32) *uint32 { return &v }
func intp(v int) *int       { return &v }

// policyCases are golden scenarios for config entries; they run with the
// sidecarCases (golden files and the sidecar decoder contract).
var policyCases = []sidecarCase{
	{
		name: "policy_router_matches_and_destinations",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets()}}
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
				{
					Match: &mesh.RouteMatch{PathPrefix: "/v2/"},
					Destination: &mesh.RouteDestination{ServiceSubset: "v2", PrefixRewrite: "/",
						RequestTimeout: 3 * time.Second, IdleTimeout: 30 * time.Second},
				},
				{
					Match: &mesh.RouteMatch{PathExact: "/admin", Methods: []string{"GET", "POST"}, Header: []mesh.HeaderMatch{
						{Name: "x-debug", Exact: "1", Invert: true},
					}},
					Destination: &mesh.RouteDestination{Service: "api-canary", NumRetries: 3, RetryOnConnectFailure: true,
						RetryOn: []string{"5xx", "reset"}, RetryOnStatusCodes: []uint32{503, 429},
						RequestHeaders:  &mesh.HeaderModifiers{Add: map[string]string{"x-route": "admin"}, Set: map[string]string{"x-env": "prod"}, Remove: []string{"x-internal"}},
						ResponseHeaders: &mesh.HeaderModifiers{Set: map[string]string{"x-served-by": "canary"}}},
				},
				{
					Match: &mesh.RouteMatch{PathRegex: "/items/[0-9]+", Header: []mesh.HeaderMatch{
						{Name: "x-present", Present: true},
						{Name: "x-prefix", Prefix: "a"},
						{Name: "x-suffix", Suffix: "z"},
						{Name: "x-regex", Regex: "^v[12]$"},
					}, QueryParam: []mesh.QueryMatch{
						{Name: "present", Present: true},
						{Name: "exact", Exact: "yes"},
						{Name: "regex", Regex: "^[a-z]+$"},
					}},
					Destination: &mesh.RouteDestination{ServiceSubset: "v1", RetryOnConnectFailure: true},
				},
				{Match: &mesh.RouteMatch{Header: []mesh.HeaderMatch{{Name: "x-empty-destination", Exact: "1"}}}},
			}}}
		},
	},
	{
		name: "policy_splitter_weights",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets()}}
			s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{
				{Weight: 66.67, ServiceSubset: "v1"},
				{Weight: 33.33, ServiceSubset: "v2",
					RequestHeaders:  &mesh.HeaderModifiers{Set: map[string]string{"x-split": "v2"}},
					ResponseHeaders: &mesh.HeaderModifiers{Remove: []string{"x-secret"}}},
				{Weight: 0, Service: "api-canary"}, // no weight: left out, as in Consul
			}}}
		},
	},
	{
		name: "policy_chain_router_splitter_resolver",
		change: func(s *mesh.Snapshot) {
			// /beta goes to the v2 subset; everything else is split 90/10
			// between the v1 subset (api's DefaultSubset) and api-canary,
			// whose own splitter sends half of its share to api's v2.
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v1",
				RequestTimeout: 10 * time.Second}}
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
				{Match: &mesh.RouteMatch{PathPrefix: "/beta"}, Destination: &mesh.RouteDestination{ServiceSubset: "v2"}},
			}}}
			s.Config.Splitters = map[string]*mesh.ServiceSplitter{
				"api":        {Name: "api", Splits: []mesh.Split{{Weight: 90}, {Weight: 10, Service: "api-canary"}}},
				"api-canary": {Name: "api-canary", Splits: []mesh.Split{{Weight: 50}, {Weight: 50, Service: "api", ServiceSubset: "v2"}}},
			}
		},
	},
	{
		name: "policy_resolver_failover_priorities",
		change: func(s *mesh.Snapshot) {
			// v1's only instance is down: its load assignment starts with
			// the failover targets (v2, then api-canary) at priorities 0, 1.
			// v2 fails over to v1 (nothing healthy) then api-canary.
			policyMesh(s, "http")
			s.Services["api"].Sidecars[0].Health = mesh.HealthCritical
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v1",
				ConnectTimeout: 2 * time.Second,
				Failover: map[string]mesh.ResolverFailover{
					"v1": {Targets: []mesh.FailoverTarget{{ServiceSubset: "v2"}, {Service: "api-canary"}}},
					"*":  {Service: "api-canary"},
				}}}
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
				{Match: &mesh.RouteMatch{PathPrefix: "/v2"}, Destination: &mesh.RouteDestination{ServiceSubset: "v2"}},
			}}}
		},
	},
	{
		name: "policy_resolver_failover_through_redirect",
		change: func(s *mesh.Snapshot) {
			// api fails over to api-old, whose resolver redirects to
			// api-canary (Consul applies redirects to failover targets).
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{
				"api":     {Name: "api", Failover: map[string]mesh.ResolverFailover{"*": {Service: "api-old"}}},
				"api-old": {Name: "api-old", Redirect: &mesh.ResolverRedirect{Service: "api-canary"}},
			}
		},
	},
	{
		name: "policy_resolver_redirect",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{
				"api":        {Name: "api", Redirect: &mesh.ResolverRedirect{Service: "api-canary"}},
				"api-canary": {Name: "api-canary", ConnectTimeout: 750 * time.Millisecond},
			}
		},
	},
	{
		name: "policy_lb_ring_hash_and_hash_policies",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", LoadBalancer: &mesh.LoadBalancer{
				Policy:         "ring_hash",
				RingHashConfig: &mesh.RingHashConfig{MinimumRingSize: 2048, MaximumRingSize: 65536},
				HashPolicies: []mesh.HashPolicy{
					{Field: "header", FieldValue: "x-user"},
					{Field: "cookie", FieldValue: "session", CookieConfig: &mesh.CookieConfig{Session: true, Path: "/"}},
					{Field: "cookie", FieldValue: "sticky", CookieConfig: &mesh.CookieConfig{TTL: time.Hour}},
					{Field: "query_parameter", FieldValue: "user"},
					{SourceIP: true, Terminal: true},
				},
			}}}
		},
	},
	{
		name: "policy_lb_least_request_maglev_random",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			proxy(s).Upstreams = append(proxy(s).Upstreams,
				mesh.Upstream{DestinationName: "api-canary", LocalBindPort: 9292},
				mesh.Upstream{DestinationName: "db", LocalBindPort: 5432})
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{
				"api":        {Name: "api", LoadBalancer: &mesh.LoadBalancer{Policy: "least_request", LeastRequestConfig: &mesh.LeastRequestConfig{ChoiceCount: 4}}},
				"api-canary": {Name: "api-canary", LoadBalancer: &mesh.LoadBalancer{Policy: "maglev", HashPolicies: []mesh.HashPolicy{{Field: "header", FieldValue: "x-user"}}}},
				"db":         {Name: "db", LoadBalancer: &mesh.LoadBalancer{Policy: "random"}},
			}
		},
	},
	{
		name: "policy_upstream_config_limits_and_passive_health_check",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			proxy(s).Upstreams = append(proxy(s).Upstreams, mesh.Upstream{DestinationName: "api-canary", LocalBindPort: 9292})
			base := 20 * time.Second
			sd := s.Config.ServiceDefaults["web"]
			sd.UpstreamDefaults = &mesh.UpstreamConfig{
				ConnectTimeout: 2 * time.Second,
				Limits:         &mesh.UpstreamLimits{MaxConnections: intp(100), MaxPendingRequests: intp(50), MaxConcurrentRequests: intp(200)},
				PassiveHealthCheck: &mesh.PassiveHealthCheck{Interval: 5 * time.Second, MaxFailures: 3,
					EnforcingConsecutive5xx: u32p(80), MaxEjectionPercent: u32p(50), BaseEjectionTime: &base},
			}
			sd.UpstreamOverrides = []mesh.UpstreamConfig{{Name: "api-canary", ConnectTimeout: 500 * time.Millisecond,
				Limits: &mesh.UpstreamLimits{MaxConcurrentRequests: intp(10)}}}
		},
	},
	{
		name: "policy_upstream_config_follows_the_upstream_through_a_split",
		change: func(s *mesh.Snapshot) {
			// Consul keys UpstreamConfig.Overrides by upstream and applies
			// it to every cluster of that upstream's chain: a split of api
			// to api-canary gives the api-canary cluster api's override
			// (connect 1.5 s, 7 connections), not api-canary's own.
			policyMesh(s, "http")
			s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 50}, {Weight: 50, Service: "api-canary"}}}}
			s.Config.ServiceDefaults["web"].UpstreamOverrides = []mesh.UpstreamConfig{
				{Name: "api", ConnectTimeout: 1500 * time.Millisecond, Limits: &mesh.UpstreamLimits{MaxConnections: intp(7)}},
				{Name: "api-canary", ConnectTimeout: 9 * time.Second},
			}
		},
	},
	{
		name: "policy_upstream_registration_config_overrides_service_defaults",
		change: func(s *mesh.Snapshot) {
			// Consul: the upstream's registration Config wins over the
			// service-defaults UpstreamConfig, field by field.
			policyMesh(s, "http")
			s.Config.ServiceDefaults["web"].UpstreamDefaults = &mesh.UpstreamConfig{
				ConnectTimeout: 2 * time.Second, Limits: &mesh.UpstreamLimits{MaxConnections: intp(100)},
				PassiveHealthCheck: &mesh.PassiveHealthCheck{MaxFailures: 9},
			}
			proxy(s).Upstreams[0].Config = map[string]string{
				"connect_timeout_ms":   "750",
				"passive_health_check": `{"interval":"2s","max_failures":2,"base_ejection_time":5000000000,"max_ejection_percent":100}`,
			}
		},
	},
	{
		name: "policy_extension_keys",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.ProxyDefaults = &mesh.ProxyDefaults{Config: map[string]string{
				KeyRetryBackoffBase: "50ms", KeyRetryBackoffMax: "1s", KeyRetryBudgetPercent: "20",
				KeyRetryBudgetMinConcurrency: "5", KeyHealthyPanicThreshold: "30",
			}}
			s.Config.ServiceDefaults["api"].Meta = map[string]string{KeyConsecutiveGatewayFailure: "3", KeyMaxEjectionTime: "2m"}
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Meta: map[string]string{
				KeySuccessRateMinimumHosts: "3", KeySuccessRateRequestVolume: "20", KeySuccessRateStdevFactor: "1500",
				KeyFailurePercentageThreshold: "50", KeyFailurePercentageRequestVol: "10", KeyFailurePercentageMinimumHosts: "2",
				KeyHealthyPanicThreshold: "0", "owner": "team-a",
			}}}
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api",
				Meta: map[string]string{KeyRetryPerTryTimeout: "250ms", KeyRetryHostSelectionMax: "5"},
				Routes: []mesh.Route{
					{Match: &mesh.RouteMatch{PathPrefix: "/"}, Destination: &mesh.RouteDestination{NumRetries: 2, RetryOn: []string{"gateway-error"}}},
				}}}
		},
	},
	{
		name: "policy_extension_previous_hosts_off",
		change: func(s *mesh.Snapshot) {
			policyMesh(s, "http")
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api",
				Meta: map[string]string{KeyRetryPreviousHosts: "false"},
				Routes: []mesh.Route{
					{Match: &mesh.RouteMatch{PathPrefix: "/"}, Destination: &mesh.RouteDestination{RetryOn: []string{"5xx"}}},
				}}}
		},
	},
	{
		name: "policy_http_upstream_in_another_datacenter",
		change: func(s *mesh.Snapshot) {
			// Local routers and splitters are not applied to another
			// datacenter's upstream (Consul compiles that chain there);
			// the resolver is, and the route configuration has its
			// default route.
			policyMesh(s, "http")
			s.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
				{Match: &mesh.RouteMatch{PathPrefix: "/x"}, Destination: &mesh.RouteDestination{Service: "api-canary"}}}}}
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", ConnectTimeout: 3 * time.Second}}
			proxy(s).Upstreams = []mesh.Upstream{{DestinationName: "api", Datacenter: "dc2", LocalBindPort: 9192}}
		},
	},
	{
		name: "policy_tcp_upstream_resolver",
		change: func(s *mesh.Snapshot) {
			// tcp: routers and splitters do not apply, the resolver does.
			policyMesh(s, "tcp")
			s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v2",
				ConnectTimeout: 1500 * time.Millisecond}}
			s.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 100, ServiceSubset: "v1"}}}}
		},
	},
}

// allSidecarCases are the sidecar golden scenarios of every kind.
func allSidecarCases() []sidecarCase {
	return append(append([]sidecarCase(nil), sidecarCases...), policyCases...)
}
