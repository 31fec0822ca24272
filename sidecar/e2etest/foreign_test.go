package e2etest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient/xdstest"
)

func sockAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol: corev3.SocketAddress_TCP, Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// TestConfigShapedLikeGoControlPlaneExample: the resources other xDS
// servers commonly send, in the shape of go-control-plane's own example
// server — a LOGICAL_DNS cluster whose endpoint is a name, RDS through a
// gRPC api_config_source naming the bootstrap's "xds_cluster", an
// HttpConnectionManager with codec AUTO and a named router filter, a
// literal host rewrite — are accepted (no NACK) and carry traffic: the name
// is resolved (V4_ONLY: localhost → 127.0.0.1) and the upstream sees the
// rewritten Host.
func TestConfigShapedLikeGoControlPlaneExample(t *testing.T) {
	hosts := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hosts <- r.Host:
		default:
		}
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(up.Close)
	upPort := hostPort(t, up).Port

	cl := &clusterv3.Cluster{
		Name:                 "example_proxy_cluster",
		ConnectTimeout:       durationpb.New(5 * time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "example_proxy_cluster", Endpoints: []*endpointv3.LocalityLbEndpoints{{
			LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: sockAddr("localhost", upPort)}}}},
		}}},
	}
	rc := &routev3.RouteConfiguration{Name: "local_route", VirtualHosts: []*routev3.VirtualHost{{
		Name: "local_service", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier:     &routev3.RouteAction_Cluster{Cluster: "example_proxy_cluster"},
				HostRewriteSpecifier: &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: "www.example.test"},
			}},
		}},
	}}}
	hcm := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: "http",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: "local_route",
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion: corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_ApiConfigSource{ApiConfigSource: &corev3.ApiConfigSource{
					TransportApiVersion:       corev3.ApiVersion_V3,
					ApiType:                   corev3.ApiConfigSource_GRPC,
					SetNodeOnFirstMessageOnly: true,
					GrpcServices: []*corev3.GrpcService{{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
						EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "xds_cluster"}}}},
				}},
			},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "http-router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: dt.MustAny(&routerv3.Router{})}}},
	}
	port := freePort(t)
	ln := &listenerv3.Listener{
		Name:    "listener_0",
		Address: sockAddr("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name: "http-connection-manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: dt.MustAny(hcm)}}}}},
	}

	cp := xdstest.Start(t, "127.0.0.1:0")
	startSidecar(t, cp.Addr, "test-id")
	cp.Set("test-id", xdstest.Snapshot(t, "1", map[string][]types.Resource{
		resourcev3.ListenerType: {ln},
		resourcev3.RouteType:    {rc},
		resourcev3.ClusterType:  {cl},
	}))
	if body := firstOK(t, cp, port, "the example listener to answer from its upstream"); body != "upstream" {
		t.Errorf("body %q, want the upstream's", body)
	}
	select {
	case h := <-hosts:
		if h != "www.example.test" {
			t.Errorf("upstream saw Host %q, want the literal rewrite www.example.test", h)
		}
	default:
		t.Error("the upstream saw no request")
	}
}

// TestStrictDNSCluster: a STRICT_DNS cluster whose endpoint is a name
// (localhost, V4_ONLY) gets a host per address from DNS and carries
// traffic, with no NACK.
func TestStrictDNSCluster(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "strict") }))
	t.Cleanup(up.Close)
	upPort := hostPort(t, up).Port

	cl := &clusterv3.Cluster{
		Name:                 "dns",
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS},
		DnsLookupFamily:      clusterv3.Cluster_V4_ONLY,
		DnsRefreshRate:       durationpb.New(100 * time.Millisecond),
		LoadAssignment:       dt.CLA("dns", dt.HostPort{Host: "localhost", Port: upPort}),
	}
	port := freePort(t)
	cp := xdstest.Start(t, "127.0.0.1:0")
	sc := startSidecar(t, cp.Addr, "dns-test")
	cp.Set("dns-test", xdstest.Snapshot(t, "1", map[string][]types.Resource{
		resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", port, "r")},
		resourcev3.RouteType:    {dt.Route("r", "dns")},
		resourcev3.ClusterType:  {cl},
	}))
	if body := firstOK(t, cp, port, "the STRICT_DNS cluster to answer"); body != "strict" {
		t.Errorf("body %q, want the upstream's", body)
	}
	hosts := sc.listeners.Clusters()
	want := "127.0.0.1:" + strconv.Itoa(int(upPort))
	if !slices.ContainsFunc(hosts, func(h cluster.HostStatus) bool { return h.Cluster == "dns" && h.Address == want }) {
		t.Errorf("hosts %+v, want %s resolved from localhost", hosts, want)
	}
}

// firstOK polls the sidecar listener on port until it answers 200 and
// returns that body; a NACK from the sidecar fails the test at once.
func firstOK(t *testing.T, cp *xdstest.ControlPlane, port uint32, what string) string {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "http://127.0.0.1:" + strconv.Itoa(int(port)) + "/"
	var body string
	xdstest.WaitFor(t, what, 10*time.Second, func() bool {
		if n := cp.NACKs(); len(n) > 0 {
			t.Fatalf("the sidecar NACKed: %v", n)
		}
		res, err := c.Get(url)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body = string(b)
		return res.StatusCode == 200
	})
	return body
}
