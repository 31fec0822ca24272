package decode_test

import (
	"fmt"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/sidecar/decode"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

func BenchmarkDecodeListener(b *testing.B) {
	l := dt.HTTPListener("public", "0.0.0.0", 21000, "web")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode.Listener(l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRouteConfiguration decodes a route configuration with 20
// routes (prefix, header and regex matches, retries) — a large
// service-router.
func BenchmarkDecodeRouteConfiguration(b *testing.B) {
	rc := dt.Route("web", "web")
	vh := rc.VirtualHosts[0]
	for i := range 20 {
		r := &routev3.Route{
			Match: &routev3.RouteMatch{
				PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/api/v%d", i)},
				Headers: []*routev3.HeaderMatcher{{Name: "x-tenant", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
					StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "t[0-9]+"}}}}}},
			},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: fmt.Sprintf("api-%d", i)},
				Timeout:          durationpb.New(3 * time.Second),
				RetryPolicy:      &routev3.RetryPolicy{RetryOn: "5xx,reset,connect-failure", NumRetries: wrapperspb.UInt32(2)},
			}},
		}
		vh.Routes = append([]*routev3.Route{r}, vh.Routes...)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode.RouteConfiguration(rc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCluster(b *testing.B) {
	c := dt.EDSCluster("web")
	c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	c.OutlierDetection = &clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3)}
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{MaxRequests: wrapperspb.UInt32(100)}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode.Cluster(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeClusterLoadAssignment decodes 100 endpoints.
func BenchmarkDecodeClusterLoadAssignment(b *testing.B) {
	var eps []dt.HostPort
	for i := range 100 {
		eps = append(eps, dt.HostPort{Host: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), Port: 21000})
	}
	cla := dt.CLA("web", eps...)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode.ClusterLoadAssignment(cla); err != nil {
			b.Fatal(err)
		}
	}
}
