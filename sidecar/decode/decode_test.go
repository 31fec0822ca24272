package decode_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/decode"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// regexpEqual compares compiled regexes by their source.
var regexpEqual = cmp.Comparer(func(a, b *regexp.Regexp) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.String() == b.String()
})

func TestListener(t *testing.T) {
	httpWith := func(mod func(*hcmv3.HttpConnectionManager)) *listenerv3.Listener {
		h := dt.HCM("web")
		mod(h)
		return dt.ListenerWith("public", "0.0.0.0", 21000, "envoy.filters.network.http_connection_manager", h)
	}
	tests := []struct {
		name string
		in   *listenerv3.Listener
		want *config.Listener
	}{
		{
			name: "http over RDS gets Envoy defaults",
			in:   dt.HTTPListener("public", "0.0.0.0", 21000, "web"),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", RouteConfigName: "web",
					StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true,
				},
			},
		},
		{
			name: "http with explicit timeouts",
			in: httpWith(func(h *hcmv3.HttpConnectionManager) {
				h.StreamIdleTimeout = durationpb.New(0)
				h.RequestTimeout = durationpb.New(3 * time.Second)
				h.UseRemoteAddress = wrapperspb.Bool(true)
				h.GenerateRequestId = wrapperspb.Bool(false)
			}),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", RouteConfigName: "web",
					RequestTimeout: 3 * time.Second, UseRemoteAddress: true,
				},
			},
		},
		{
			name: "websocket upgrade (always passed through)",
			in: httpWith(func(h *hcmv3.HttpConnectionManager) {
				h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket"}}
			}),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", RouteConfigName: "web",
					StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true,
				},
			},
		},
		{
			name: "inline route config",
			in: httpWith(func(h *hcmv3.HttpConnectionManager) {
				h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: dt.Route("inline", "app")}
			}),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true,
					Inline: &config.RouteConfig{Name: "inline", VirtualHosts: []*config.VirtualHost{{
						Name: "inline", Domains: []string{"*"},
						Routes: []*config.Route{{
							Match:   config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true},
							Forward: &config.RouteAction{Cluster: "app", Timeout: 15 * time.Second},
						}},
					}}},
				},
			},
		},
		{
			name: "codec_type HTTP2 (h2c only)",
			in: httpWith(func(h *hcmv3.HttpConnectionManager) {
				h.CodecType = hcmv3.HttpConnectionManager_HTTP2
			}),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", RouteConfigName: "web",
					StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true, Codec: config.CodecHTTP2,
				},
			},
		},
		{
			// Envoy ignores an unknown filter marked is_optional, and one
			// marked disabled runs only where a route enables it.
			name: "optional and disabled http filters are skipped",
			in: httpWith(func(h *hcmv3.HttpConnectionManager) {
				h.HttpFilters = append([]*hcmv3.HttpFilter{
					{Name: "envoy.filters.http.cors", IsOptional: true, ConfigType: &hcmv3.HttpFilter_TypedConfig{
						TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}},
					{Name: "envoy.filters.http.ext_authz", Disabled: true, ConfigType: &hcmv3.HttpFilter_TypedConfig{
						TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", Value: []byte{0xff}}}},
				}, h.HttpFilters...)
			}),
			want: &config.Listener{
				Name: "public", Address: "0.0.0.0:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{
					StatPrefix: "web", RouteConfigName: "web",
					StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true,
				},
			},
		},
		{
			name: "tcp proxy",
			in:   dt.TCPListener("db", "127.0.0.1", 9191, "postgres"),
			want: &config.Listener{
				Name: "db", Address: "127.0.0.1:9191", PerConnectionBufferLimitBytes: 1 << 20,
				TCP: &config.TCPProxy{StatPrefix: "db", Cluster: "postgres", IdleTimeout: time.Hour},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode.Listener(tc.in)
			if err != nil {
				t.Fatalf("Listener: %v", err)
			}
			if diff := cmp.Diff(tc.want, got, regexpEqual); diff != "" {
				t.Errorf("Listener (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRouteConfiguration(t *testing.T) {
	rc := dt.Route("web", "web-v1", "web", "web.*")
	vh := rc.VirtualHosts[0]
	vh.RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,connect-failure"}
	vh.Routes = append([]*routev3.Route{
		{
			Name: "api",
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/api/v[0-9]+/.*"}},
				CaseSensitive: wrapperspb.Bool(false),
				Headers: []*routev3.HeaderMatcher{
					{Name: "X-Canary", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "yes"}, IgnoreCase: true}}},
					{Name: "x-debug", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}},
				},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "v", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "2"}}}}},
			},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{
						{Name: "web-v1", Weight: wrapperspb.UInt32(90)},
						{Name: "web-v2", Weight: wrapperspb.UInt32(10), RequestHeadersToAdd: []*corev3.HeaderValueOption{{
							Header: &corev3.HeaderValue{Key: "x-version", Value: "2"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}}},
					},
				}},
				PrefixRewrite: "/",
				Timeout:       durationpb.New(2 * time.Second),
				RetryPolicy: &routev3.RetryPolicy{
					RetryOn:              "gateway-error,retriable-status-codes,unavailable",
					NumRetries:           wrapperspb.UInt32(3),
					PerTryTimeout:        durationpb.New(500 * time.Millisecond),
					RetriableStatusCodes: []uint32{409},
					RetryBackOff:         &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(10 * time.Millisecond)},
					RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
						Name: "envoy.retry_host_predicates.previous_hosts"}},
					HostSelectionRetryMaxAttempts: 3,
				},
				HashPolicy: []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
					Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "X-User"}}, Terminal: true}},
			}},
		},
		{
			Name:  "old",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/old"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/new"},
				ResponseCode:         routev3.RedirectAction_FOUND,
			}},
		},
		{
			Name:  "health",
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/healthz"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}}}},
			ResponseHeadersToRemove: []string{"Server"},
		},
	}, vh.Routes...)

	want := &config.RouteConfig{Name: "web", VirtualHosts: []*config.VirtualHost{{
		Name: "web", Domains: []string{"web", "web.*"},
		RetryPolicy: &config.RetryPolicy{
			RetryOn: config.Retry5xx | config.RetryConnectFailure, NumRetries: 1,
			BackOffBase: 25 * time.Millisecond, BackOffMax: 250 * time.Millisecond, HostSelectionAttempts: 1,
		},
		Routes: []*config.Route{
			{
				Name: "api",
				Match: config.RouteMatch{
					Kind: config.PathRegex, Regex: regexp.MustCompile(`^(?:/api/v[0-9]+/.*)$`),
					Headers: []config.HeaderMatcher{
						{Name: "x-canary", Match: config.StringMatcher{Kind: config.MatchExact, Value: "yes", IgnoreCase: true}},
						{Name: "x-debug", Match: config.StringMatcher{Kind: config.MatchPresent}, Invert: true},
					},
					QueryParams: []config.QueryParamMatcher{{Name: "v", Match: config.StringMatcher{Kind: config.MatchPrefix, Value: "2"}}},
				},
				Forward: &config.RouteAction{
					WeightedClusters: []config.WeightedCluster{
						{Name: "web-v1", Weight: 90},
						{Name: "web-v2", Weight: 10, RequestHeadersToAdd: []config.HeaderValueOption{{Key: "x-version", Value: "2"}}},
					},
					TotalWeight:   100,
					PrefixRewrite: "/",
					Timeout:       2 * time.Second,
					RetryPolicy: &config.RetryPolicy{
						RetryOn:               config.RetryGatewayError | config.RetryRetriableStatusCodes | config.RetryGRPCUnavailable,
						NumRetries:            3,
						PerTryTimeout:         500 * time.Millisecond,
						RetriableStatusCodes:  []uint32{409},
						BackOffBase:           10 * time.Millisecond,
						BackOffMax:            100 * time.Millisecond,
						RetryPreviousHosts:    true,
						HostSelectionAttempts: 3,
					},
					HashPolicies: []config.HashPolicy{{Header: "x-user", Terminal: true}},
				},
			},
			{
				Name:     "old",
				Match:    config.RouteMatch{Kind: config.PathExact, Path: "/old", CaseSensitive: true},
				Redirect: &config.RedirectAction{PathRedirect: "/new", ResponseCode: 302},
			},
			{
				Name:                    "health",
				Match:                   config.RouteMatch{Kind: config.PathExact, Path: "/healthz", CaseSensitive: true},
				DirectResponse:          &config.DirectResponseAction{Status: 200, Body: []byte("ok")},
				ResponseHeadersToRemove: []string{"server"},
			},
			{
				Match:   config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true},
				Forward: &config.RouteAction{Cluster: "web-v1", Timeout: 15 * time.Second},
			},
		},
	}}}
	got, err := decode.RouteConfiguration(rc)
	if err != nil {
		t.Fatalf("RouteConfiguration: %v", err)
	}
	if diff := cmp.Diff(want, got, regexpEqual); diff != "" {
		t.Errorf("RouteConfiguration (-want +got):\n%s", diff)
	}
	if !got.VirtualHosts[0].Routes[0].Match.Regex.MatchString("/api/v2/x") || got.VirtualHosts[0].Routes[0].Match.Regex.MatchString("/x/api/v2/") {
		t.Errorf("safe_regex is not a full match")
	}
}

func TestCluster(t *testing.T) {
	defaultsCB := config.CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}
	base := func(name string) config.Cluster {
		return config.Cluster{
			Name: name, ConnectTimeout: 5 * time.Second, LeastRequestChoiceCount: 2,
			RingHashMinSize: 1024, RingHashMaxSize: 8 << 20, MaglevTableSize: 65537,
			HealthyPanicThreshold: 50, CircuitBreakers: defaultsCB,
		}
	}
	h2opts := &httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
		ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
			Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}}}}
	tests := []struct {
		name string
		in   func() *clusterv3.Cluster
		want func() config.Cluster
	}{
		{
			name: "eds defaults",
			in:   func() *clusterv3.Cluster { c := dt.EDSCluster("web"); c.ConnectTimeout = nil; return c },
			want: func() config.Cluster { c := base("web"); c.EDSServiceName = "web"; return c },
		},
		{
			name: "static with endpoints",
			in: func() *clusterv3.Cluster {
				return dt.StaticCluster("local_app", dt.HostPort{Host: "127.0.0.1", Port: 8080})
			},
			want: func() config.Cluster {
				c := base("local_app")
				c.Endpoints = []config.Endpoint{{Address: "127.0.0.1:8080", Weight: 1, Health: config.HealthHealthy}}
				return c
			},
		},
		{
			name: "circuit-breaker thresholds set to zero are zero, not the default",
			in: func() *clusterv3.Cluster {
				c := dt.EDSCluster("api")
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					MaxRetries: wrapperspb.UInt32(0), MaxPendingRequests: wrapperspb.UInt32(0),
				}}}
				return c
			},
			want: func() config.Cluster {
				c := base("api")
				c.ConnectTimeout = time.Second
				c.EDSServiceName = "api"
				c.CircuitBreakers = config.CircuitBreakers{MaxConnections: 1024, MaxRequests: 1024,
					Explicit: config.ThresholdRetries | config.ThresholdPendingRequests}
				return c
			},
		},
		{
			name: "STRICT_DNS: names, V4_ONLY, refresh rate",
			in: func() *clusterv3.Cluster {
				c := dt.EDSCluster("api")
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
				c.EdsClusterConfig = nil
				c.LoadAssignment = dt.CLA("api", dt.HostPort{Host: "a.example", Port: 80}, dt.HostPort{Host: "10.0.0.1", Port: 81})
				c.DnsLookupFamily = clusterv3.Cluster_V4_ONLY
				c.DnsRefreshRate = durationpb.New(2 * time.Second)
				return c
			},
			want: func() config.Cluster {
				c := base("api")
				c.ConnectTimeout = time.Second
				c.StrictDNS, c.DNSRefreshRate, c.DialNetwork = true, 2*time.Second, "tcp4"
				c.Endpoints = []config.Endpoint{{Address: "a.example:80", Weight: 1, Health: config.HealthHealthy}, {Address: "10.0.0.1:81", Weight: 1, Health: config.HealthHealthy}}
				return c
			},
		},
		{
			name: "resilience settings",
			in: func() *clusterv3.Cluster {
				c := dt.EDSCluster("api")
				c.EdsClusterConfig.ServiceName = "api~v2"
				c.LbPolicy = clusterv3.Cluster_RING_HASH
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(64)}}
				c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 30}}
				c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
					MaxConnections: wrapperspb.UInt32(10), MaxRetries: wrapperspb.UInt32(1),
					RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{},
				}}}
				c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3), Interval: durationpb.New(time.Second)}
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": dt.MustAny(h2opts)}
				return c
			},
			want: func() config.Cluster {
				c := base("api")
				c.ConnectTimeout = time.Second
				c.EDSServiceName = "api~v2"
				c.LBPolicy = config.RingHash
				c.RingHashMinSize = 64
				c.HealthyPanicThreshold = 30
				c.Protocol = config.HTTP2
				c.CircuitBreakers = config.CircuitBreakers{MaxConnections: 10, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 1,
					Explicit:    config.ThresholdConnections | config.ThresholdRetries,
					RetryBudget: &config.RetryBudget{BudgetPercent: 20, MinRetryConcurrency: 3}}
				c.OutlierDetection = &config.OutlierDetection{
					Consecutive5xx: 3, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
					Interval: time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
					MaxEjectionPercent: 10, EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocalOriginFailure: 100,
					EnforcingSuccessRate: 100, SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100,
					SuccessRateStdevFactor: 1900, FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 50,
					FailurePercentageThreshold: 85,
				}
				return c
			},
		},
		{
			name: "least request with http2 (deprecated field)",
			in: func() *clusterv3.Cluster {
				c := dt.EDSCluster("grpc")
				c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
				c.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{}
				return c
			},
			want: func() config.Cluster {
				c := base("grpc")
				c.ConnectTimeout = time.Second
				c.EDSServiceName = "grpc"
				c.LBPolicy = config.LeastRequest
				c.Protocol = config.HTTP2
				return c
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode.Cluster(tc.in())
			if err != nil {
				t.Fatalf("Cluster: %v", err)
			}
			want := tc.want()
			if diff := cmp.Diff(&want, got); diff != "" {
				t.Errorf("Cluster (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClusterLoadAssignment(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "web", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{
			Locality:            &corev3.Locality{Region: "eu", Zone: "a"},
			LoadBalancingWeight: wrapperspb.UInt32(3),
			LbEndpoints: []*endpointv3.LbEndpoint{
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: dt.Address("10.0.0.1", 21000)}},
					HealthStatus: corev3.HealthStatus_HEALTHY, LoadBalancingWeight: wrapperspb.UInt32(2)},
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: dt.Address("::1", 21001)}},
					HealthStatus: corev3.HealthStatus_DRAINING},
			},
		},
		{
			Priority: 1,
			LbEndpoints: []*endpointv3.LbEndpoint{
				{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: dt.Address("10.0.1.1", 21000)}}},
			},
		},
	}}
	want := []config.Endpoint{
		{Address: "10.0.0.1:21000", Weight: 2, Health: config.HealthHealthy, Locality: "eu/a/", LocalityWeight: 3},
		{Address: "[::1]:21001", Weight: 1, Health: config.HealthDraining, Locality: "eu/a/", LocalityWeight: 3},
		{Address: "10.0.1.1:21000", Weight: 1, Health: config.HealthUnknown, Priority: 1},
	}
	got, err := decode.ClusterLoadAssignment(cla)
	if err != nil {
		t.Fatalf("ClusterLoadAssignment: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ClusterLoadAssignment (-want +got):\n%s", diff)
	}
}

// TestRejects checks that unimplemented or invalid input is an error naming
// the resource and the field, never silently ignored.
func TestRejects(t *testing.T) {
	type decodeFunc func() error
	listener := func(mod func(*listenerv3.Listener)) decodeFunc {
		return func() error {
			l := dt.HTTPListener("x", "127.0.0.1", 80, "r")
			mod(l)
			_, err := decode.Listener(l)
			return err
		}
	}
	hcm := func(mod func(*hcmv3.HttpConnectionManager)) decodeFunc {
		return func() error {
			h := dt.HCM("r")
			mod(h)
			_, err := decode.Listener(dt.ListenerWith("x", "127.0.0.1", 80, "hcm", h))
			return err
		}
	}
	route := func(mod func(*routev3.RouteConfiguration)) decodeFunc {
		return func() error {
			rc := dt.Route("r", "c")
			mod(rc)
			_, err := decode.RouteConfiguration(rc)
			return err
		}
	}
	cluster := func(mod func(*clusterv3.Cluster)) decodeFunc {
		return func() error {
			c := dt.EDSCluster("c")
			mod(c)
			_, err := decode.Cluster(c)
			return err
		}
	}
	tests := []struct {
		name string
		run  decodeFunc
		want string
	}{
		{"listener use_original_dst", listener(func(l *listenerv3.Listener) { l.UseOriginalDst = wrapperspb.Bool(true) }),
			`listener "x": field use_original_dst is not supported`},
		{"listener filter_chain_match", listener(func(l *listenerv3.Listener) {
			l.FilterChains[0].FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{"a"}}
		}), `listener "x": filter_chains[0]: field filter_chain_match is not supported`},
		{"listener two chains", listener(func(l *listenerv3.Listener) { l.FilterChains = append(l.FilterChains, l.FilterChains[0]) }),
			`want exactly 1 filter chain, got 2`},
		{"hcm tracing", hcm(func(h *hcmv3.HttpConnectionManager) { h.Tracing = &hcmv3.HttpConnectionManager_Tracing{} }),
			`listener "x": filter_chains[0].filters[0].typed_config: field tracing is not supported`},
		{"hcm unknown http filter type", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters[0].ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: dt.MustAny(&corev3.Http1ProtocolOptions{})}
		}), `http_filters[0].typed_config: field type_url "type.googleapis.com/envoy.config.core.v3.Http1ProtocolOptions" is not supported`},
		{"hcm required http filter", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.cors", ConfigType: &hcmv3.HttpFilter_TypedConfig{
				TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}}}}, h.HttpFilters...)
		}), `http_filters[0].typed_config: field type_url "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors" is not supported`},
		{"hcm router not last", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{Name: "envoy.filters.http.cors", IsOptional: true})
		}), `http_filters[0]: the router must be the last filter`},
		{"hcm no http filters", hcm(func(h *hcmv3.HttpConnectionManager) { h.HttpFilters = nil }),
			`http_filters: the router filter is required`},
		{"hcm required http filter without typed_config", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.HttpFilters = append([]*hcmv3.HttpFilter{{Name: "envoy.filters.http.fault"}}, h.HttpFilters...)
		}), `http_filters[0]: filter "envoy.filters.http.fault" is not supported`},
		{"hcm rds over path", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.GetRds().ConfigSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Path{Path: "/x"}}
		}), `rds.config_source: field path is not supported`},
		{"hcm connect upgrade", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "CONNECT"}}
		}), `upgrade_configs[0].upgrade_type: "CONNECT" is not supported`},
		{"hcm websocket disabled", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket", Enabled: wrapperspb.Bool(false)}}
		}), `disabling websocket is not supported`},
		{"hcm upgrade filters", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.UpgradeConfigs = []*hcmv3.HttpConnectionManager_UpgradeConfig{{UpgradeType: "websocket", Filters: h.HttpFilters}}
		}), `upgrade_configs[0]: field filters is not supported`},
		{"hcm codec http3", hcm(func(h *hcmv3.HttpConnectionManager) { h.CodecType = hcmv3.HttpConnectionManager_HTTP3 }),
			`codec_type: HTTP3 is not supported`},
		{"filter unknown type", listener(func(l *listenerv3.Listener) {
			l.FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC"}}
		}), `filter_chains[0].filters[0].typed_config: field type_url "type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC" is not supported`},
		{"route cors", route(func(rc *routev3.RouteConfiguration) { rc.VirtualHosts[0].Cors = &routev3.CorsPolicy{} }),
			`route_configuration "r": virtual_hosts[0]: field cors is not supported`},
		{"route action mirror", route(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "m"}}
		}), `virtual_hosts[0].routes[0].route: field request_mirror_policies is not supported`},
		{"route bad regex", route(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Match.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}
		}), `match: safe_regex: regex "("`},
		{"route unknown retry_on", route(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx,envoy-ratelimited"}
		}), `retry_on: condition "envoy-ratelimited" is not supported`},
		{"route direct response too large", route(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{
				Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: strings.Repeat("x", 4097)}}}}
		}), `direct_response: body: 4097 bytes exceed the 4096-byte limit`},
		{"route duplicate domain", route(func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{Name: "b", Domains: []string{"*"}})
		}), `domain "*" is already in virtual host "r"`},
		{"route header add_if_absent", route(func(rc *routev3.RouteConfiguration) {
			rc.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "a", Value: "b"}, AppendAction: corev3.HeaderValueOption_ADD_IF_ABSENT}}
		}), `request_headers_to_add[0].append_action: ADD_IF_ABSENT is not supported`},
		{"cluster STRICT_DNS respecting DNS TTLs", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			c.EdsClusterConfig = nil
			c.LoadAssignment = dt.CLA("c", dt.HostPort{Host: "a.example", Port: 80})
			c.RespectDnsTtl = true
		}), `respect_dns_ttl: not supported`},
		{"cluster ORIGINAL_DST", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}
		}), `type: ORIGINAL_DST is not supported (STATIC, EDS, STRICT_DNS or LOGICAL_DNS)`},
		{"cluster LOGICAL_DNS with two endpoints", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
			c.EdsClusterConfig = nil
			c.LoadAssignment = dt.CLA("c", dt.HostPort{Host: "a.example", Port: 80}, dt.HostPort{Host: "b.example", Port: 80})
		}), `LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint`},
		{"cluster LOGICAL_DNS V4_PREFERRED", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
			c.EdsClusterConfig = nil
			c.LoadAssignment = dt.CLA("c", dt.HostPort{Host: "a.example", Port: 80})
			c.DnsLookupFamily = clusterv3.Cluster_V4_PREFERRED
		}), `dns_lookup_family: V4_PREFERRED is not supported`},
		{"STATIC cluster endpoint that is a name", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			c.EdsClusterConfig = nil
			c.LoadAssignment = dt.CLA("c", dt.HostPort{Host: "a.example", Port: 80})
		}), `"a.example" is not an IP address`},
		{"RDS over REST", hcm(func(h *hcmv3.HttpConnectionManager) {
			h.GetRds().ConfigSource = &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{
				ApiConfigSource: &corev3.ApiConfigSource{ApiType: corev3.ApiConfigSource_REST}}}
		}), `api_config_source.api_type: REST is not supported`},
		{"cluster transport_socket", cluster(func(c *clusterv3.Cluster) { c.TransportSocket = &corev3.TransportSocket{Name: "tls"} }),
			`cluster "c": field transport_socket is not supported`},
		{"cluster strict dns without endpoints", cluster(func(c *clusterv3.Cluster) {
			c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
			c.EdsClusterConfig = nil
		}), `load_assignment is required for type STRICT_DNS`},
		{"cluster outlier local origin success rate", cluster(func(c *clusterv3.Cluster) {
			c.OutlierDetection = &clusterv3.OutlierDetection{EnforcingLocalOriginSuccessRate: wrapperspb.UInt32(1)}
		}), `cluster "c": outlier_detection: field enforcing_local_origin_success_rate is not supported`},
		{"cluster high priority thresholds", cluster(func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{Priority: corev3.RoutingPriority_HIGH}}}
		}), `circuit_breakers: thresholds[0].priority: HIGH is not supported`},
		{"cluster cluster_provided lb", cluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }),
			`lb_policy: CLUSTER_PROVIDED is not supported`},
		{"cluster maglev table not prime", cluster(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(100)}}
		}), `maglev_lb_config.table_size: 100 is not prime`},
		{"cla hostname endpoint", func() error {
			_, err := decode.ClusterLoadAssignment(dt.CLA("e", dt.HostPort{Host: "db.example.com", Port: 5432}))
			return err
		}, `endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "db.example.com" is not an IP address`},
		{"cla overprovisioning policy", func() error {
			cla := dt.CLA("e", dt.HostPort{Host: "1.2.3.4", Port: 1})
			cla.Policy = &endpointv3.ClusterLoadAssignment_Policy{}
			_, err := decode.ClusterLoadAssignment(cla)
			return err
		}, `cluster_load_assignment "e": field policy is not supported`},
		{"unknown wire field", func() error {
			l := dt.HTTPListener("x", "127.0.0.1", 80, "r")
			l.ProtoReflect().SetUnknown([]byte{0xf8, 0xff, 0x3f, 0x01}) // field 131071, varint 1
			_, err := decode.Listener(l)
			return err
		}, `listener "x": field (unknown field) in envoy.config.listener.v3.Listener is not known`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatalf("decode succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}
