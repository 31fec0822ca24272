// Package decodetest builds small, valid Envoy v3 resources of the shapes
// the Consulate control plane sends, for tests of the decoder and the xDS
// client. Every builder returns a fresh message the caller may modify.
package decodetest

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// MustAny packs m or panics (test inputs are static).
func MustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// Address is a TCP socket address.
func Address(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// ADS is a ConfigSource pointing at the ADS stream.
func ADS() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// HCM is an HttpConnectionManager using RDS route configuration route.
func HCM(route string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: route,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ADS(), RouteConfigName: route,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: MustAny(&routerv3.Router{})},
		}},
	}
}

// ListenerWith is a listener on host:port whose single filter is filter.
func ListenerWith(name, host string, port uint32, filterName string, filter proto.Message) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: Address(host, port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       filterName,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: MustAny(filter)},
			}},
		}},
	}
}

// HTTPListener is an HTTP listener on host:port using RDS route.
func HTTPListener(name, host string, port uint32, route string) *listenerv3.Listener {
	return ListenerWith(name, host, port, "envoy.filters.network.http_connection_manager", HCM(route))
}

// TCPListener is a tcp_proxy listener on host:port forwarding to cluster.
func TCPListener(name, host string, port uint32, cluster string) *listenerv3.Listener {
	return ListenerWith(name, host, port, "envoy.filters.network.tcp_proxy",
		&tcpv3.TcpProxy{StatPrefix: name, ClusterSpecifier: &tcpv3.TcpProxy_Cluster{Cluster: cluster}})
}

// Route is a route configuration with one virtual host for domains ("*"
// when none) whose single prefix "/" route forwards to cluster.
func Route(name, cluster string, domains ...string) *routev3.RouteConfiguration {
	if len(domains) == 0 {
		domains = []string{"*"}
	}
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: domains,
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

// EDSCluster is an EDS cluster over ADS whose load assignment is named
// after the cluster.
func EDSCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ADS()},
	}
}

// StaticCluster is a STATIC cluster with the given host:port endpoints.
func StaticCluster(name string, eps ...HostPort) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		LoadAssignment:       CLA(name, eps...),
	}
}

// HostPort is one endpoint address.
type HostPort struct {
	Host string
	Port uint32
}

// CLA is a ClusterLoadAssignment with one locality holding eps.
func CLA(name string, eps ...HostPort) *endpointv3.ClusterLoadAssignment {
	loc := &endpointv3.LocalityLbEndpoints{}
	for _, ep := range eps {
		loc.LbEndpoints = append(loc.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: Address(ep.Host, ep.Port)}},
			HealthStatus:   corev3.HealthStatus_HEALTHY,
		})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{loc}}
}
