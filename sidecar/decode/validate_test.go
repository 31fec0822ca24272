package decode

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	pgv "github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// roots are the messages the decoder validates, and the Any payloads it
// accepts (validated once unpacked).
var roots = []protoreflect.FullName{
	"envoy.config.listener.v3.Listener", "envoy.config.cluster.v3.Cluster",
	"envoy.config.route.v3.RouteConfiguration", "envoy.config.endpoint.v3.ClusterLoadAssignment",
	hcmType, tcpProxyType, routerType, previousHostType, httpOptionsType,
}

// TestRulesCovered walks every message reachable from what the decoder
// validates: each protoc-gen-validate rule in their descriptors must be
// one validate interprets (a go-control-plane upgrade bringing a new kind
// of rule fails here instead of going unchecked).
func TestRulesCovered(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	rules := 0
	var walk func(md protoreflect.MessageDescriptor)
	walk = func(md protoreflect.MessageDescriptor) {
		if seen[md.FullName()] {
			return
		}
		seen[md.FullName()] = true
		for i := range md.Fields().Len() {
			fd := md.Fields().Get(i)
			if r, _ := proto.GetExtension(fd.Options(), pgv.E_Rules).(*pgv.FieldRules); r != nil {
				rules++
				if u := unsupportedRules(r); len(u) > 0 {
					t.Errorf("%s: rules %v are not interpreted by validate", fd.FullName(), u)
				}
			}
			if fd.Message() != nil {
				walk(fd.Message())
			}
		}
	}
	for _, n := range roots {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(n)
		if err != nil {
			t.Fatal(err)
		}
		walk(mt.Descriptor())
	}
	if len(seen) < 100 || rules < 300 {
		t.Errorf("walked %d messages and %d field rules: the walk missed most of them", len(seen), rules)
	}
	if u := unsupportedRules(&pgv.FieldRules{Type: &pgv.FieldRules_String_{String_: &pgv.StringRules{WellKnown: &pgv.StringRules_Email{Email: true}}}}); len(u) != 1 || u[0] != "string.email" {
		t.Errorf("unsupportedRules(email) = %v, want [string.email]", u)
	}
}

// generated is protoc-gen-validate's own Validate (linked into the tests
// only).
type generated interface{ Validate() error }

func mutRoute(mut func(*routev3.Route)) *routev3.RouteConfiguration {
	rc := dt.Route("rc", "c", "*")
	mut(rc.VirtualHosts[0].Routes[0])
	return rc
}

func mutCluster(mut func(*clusterv3.Cluster)) *clusterv3.Cluster {
	c := dt.EDSCluster("c")
	mut(c)
	return c
}

// TestValidateAgrees checks validate against the generated Validate on
// valid resources and on one invalid resource per kind of rule in use.
func TestValidateAgrees(t *testing.T) {
	tests := []struct {
		name string
		m    proto.Message
		want string // "" for valid; else a substring of validate's error
	}{
		{name: "http listener", m: dt.HTTPListener("l", "0.0.0.0", 80, "r")},
		{name: "tcp listener", m: dt.TCPListener("l", "127.0.0.1", 80, "c")},
		{name: "route", m: dt.Route("rc", "c", "*", "a.b")},
		{name: "eds cluster", m: dt.EDSCluster("c")},
		{name: "static cluster", m: dt.StaticCluster("c", dt.HostPort{Host: "10.0.0.1", Port: 80})},
		{name: "endpoints", m: dt.CLA("c", dt.HostPort{Host: "10.0.0.1", Port: 80})},
		{name: "hcm", m: dt.HCM("r")},
		{name: "string min_len", m: mutRoute(func(r *routev3.Route) { r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: ""} }), want: "Routes[0].Route.Cluster: value length must be at least 1"},
		{name: "oneof required", m: mutRoute(func(r *routev3.Route) { r.Action = nil }), want: "Routes[0].Action: value is required"},
		{name: "message required", m: mutRoute(func(r *routev3.Route) { r.Match = nil }), want: "Match: value is required"},
		{name: "enum defined_only", m: mutCluster(func(c *clusterv3.Cluster) { c.LbPolicy = 99 }), want: "LbPolicy: value must be one of the defined enum values"},
		{name: "uint32 lte", m: dt.CLA("c", dt.HostPort{Host: "10.0.0.1", Port: 70000}), want: "PortValue: value must be less than or equal to 65535"},
		{name: "uint32 gte wrapper", m: mutCluster(func(c *clusterv3.Cluster) {
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(1 << 24)}}
		}), want: "MinimumRingSize: value must be less than or equal to 8388608"},
		{name: "duration gt", m: mutCluster(func(c *clusterv3.Cluster) { c.ConnectTimeout = durationpb.New(0) }), want: "ConnectTimeout: value must be greater than 0s"},
		{name: "duration invalid", m: mutCluster(func(c *clusterv3.Cluster) { c.ConnectTimeout = &durationpb.Duration{Seconds: 1, Nanos: -1} }), want: "not a valid duration"},
		{name: "repeated min_items", m: mutRoute(func(r *routev3.Route) {
			r.Action = &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{}}}}
		}), want: "Clusters: value must contain at least 1 item(s)"},
		{name: "header name regex", m: mutRoute(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "bad\nname", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}
		}), want: "Headers[0].Name: value does not match regex pattern"},
		{name: "header value regex", m: mutRoute(func(r *routev3.Route) {
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "a\nb"}}}
		}), want: "RequestHeadersToAdd[0].Header.Value: value does not match regex pattern"},
		{name: "string max_bytes", m: mutRoute(func(r *routev3.Route) {
			r.Match.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/"}
			r.RequestHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: strings.Repeat("v", 16385)}}}
		}), want: "Value: value length must be at most 16384 bytes"},
		{name: "double range", m: mutCluster(func(c *clusterv3.Cluster) {
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{ActiveRequestBias: &corev3.RuntimeDouble{DefaultValue: -1, RuntimeKey: "k"}}}
		}), want: ""},
		{name: "repeated string items", m: mutRoute(func(r *routev3.Route) {
			r.GetRoute().RetryPolicy = &routev3.RetryPolicy{RetryOn: "5xx", RateLimitedRetryBackOff: &routev3.RetryPolicy_RateLimitedRetryBackOff{}}
		}), want: "ResetHeaders: value must contain at least 1 item(s)"},
		{name: "string matcher oneof", m: mutRoute(func(r *routev3.Route) {
			r.Match.Headers = []*routev3.HeaderMatcher{{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{}}}}
		}), want: "MatchPattern: value is required"},
		{name: "hcm stat_prefix", m: func() proto.Message { h := dt.HCM("r"); h.StatPrefix = ""; return h }(), want: "StatPrefix: value length must be at least 1"},
		{name: "tcp proxy", m: &tcpv3.TcpProxy{}, want: "value"},
		{name: "http options oneof", m: &httpv3.HttpProtocolOptions{}, want: "UpstreamProtocolOptions: value is required"},
		{name: "any required", m: func() proto.Message {
			l := dt.HTTPListener("l", "0.0.0.0", 80, "r")
			l.ListenerFilters = []*listenerv3.ListenerFilter{{Name: "f", ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: &anypb.Any{}}}}
			return l
		}(), want: ""},
		{name: "endpoint weight", m: func() proto.Message {
			c := dt.CLA("c", dt.HostPort{Host: "10.0.0.1", Port: 80})
			c.Endpoints[0].LbEndpoints[0].LoadBalancingWeight = wrapperspb.UInt32(0)
			return c
		}(), want: "LoadBalancingWeight: value must be greater than or equal to 1"},
		{name: "map keys", m: func() proto.Message {
			c := dt.EDSCluster("c")
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"": dt.MustAny(&httpv3.HttpProtocolOptions{})}
			return c
		}(), want: ""},
		{name: "locality", m: func() proto.Message {
			c := dt.CLA("c", dt.HostPort{Host: "10.0.0.1", Port: 80})
			c.Endpoints = append(c.Endpoints, &endpointv3.LocalityLbEndpoints{Priority: 200})
			return c
		}(), want: "Priority: value must be less than or equal to 128"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.m)
			genErr := tc.m.(generated).Validate()
			if (err == nil) != (genErr == nil) {
				t.Fatalf("validate: %v; generated Validate: %v", err, genErr)
			}
			if tc.want == "" {
				return // agreement is what is checked (valid or not)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want an error containing %q (generated: %v)", err, tc.want, genErr)
			}
		})
	}
}

// FuzzValidateAgrees feeds arbitrary wire bytes parsed as each resource
// type: validate and the generated Validate must agree on valid or not.
func FuzzValidateAgrees(f *testing.F) {
	for _, m := range []proto.Message{
		dt.HTTPListener("l", "0.0.0.0", 80, "r"), dt.TCPListener("l", "127.0.0.1", 80, "c"),
		dt.Route("rc", "c", "*", "a.b"), dt.EDSCluster("c"), dt.CLA("c", dt.HostPort{Host: "10.0.0.1", Port: 80}), dt.HCM("r"),
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range []proto.Message{&listenerv3.Listener{}, &routev3.RouteConfiguration{}, &clusterv3.Cluster{},
			&endpointv3.ClusterLoadAssignment{}, &hcmv3.HttpConnectionManager{}} {
			if proto.Unmarshal(data, m) != nil {
				continue
			}
			err, genErr := validate(m), m.(generated).Validate()
			if (err == nil) != (genErr == nil) {
				t.Fatalf("%T: validate: %v; generated Validate: %v", m, err, genErr)
			}
		}
	})
}
