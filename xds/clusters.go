package xds

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// DefaultConnectTimeout is the connect timeout of every cluster (Envoy's and
// Consul's default) until config entries say otherwise.
const DefaultConnectTimeout = 5 * time.Second

// httpProtocolOptionsKey is the typed_extension_protocol_options key under
// which Envoy looks for upstream HTTP settings.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// localAppCluster reaches the application next to the sidecar: a STATIC
// cluster with one endpoint, LocalServiceAddress:LocalServicePort.
func localAppCluster(host string, port int, proto Protocol, connectTimeout time.Duration) (*clusterv3.Cluster, error) {
	c := &clusterv3.Cluster{
		Name:                 LocalAppName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: LocalAppName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				Locality: &corev3.Locality{},
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
						Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)},
					},
				}},
				LoadBalancingWeight: wrapperspb.UInt32(1),
			}},
		},
	}
	if err := setProtocolOptions(c, proto); err != nil {
		return nil, err
	}
	return c, nil
}

// edsCluster is one target's cluster, its endpoints delivered by EDS over
// the same ADS stream (the ClusterLoadAssignment carries the cluster's
// name, so eds_cluster_config.service_name stays unset).
func edsCluster(name string, connectTimeout time.Duration, proto Protocol) (*clusterv3.Cluster, error) {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsConfigSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
	}
	if err := setProtocolOptions(c, proto); err != nil {
		return nil, err
	}
	return c, nil
}

// setProtocolOptions makes the cluster speak HTTP/2 to its endpoints when
// the protocol needs it (prior knowledge, h2c inside the mesh). HTTP/1.1
// is Envoy's default and needs nothing.
func setProtocolOptions(c *clusterv3.Cluster, proto Protocol) error {
	if !proto.UsesHTTP2() {
		return nil
	}
	opts, err := toAny(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return fmt.Errorf("cluster %s: %w", c.GetName(), err)
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpProtocolOptionsKey: opts}
	return nil
}

// adsConfigSource points RDS and EDS at the ADS stream the resource came
// on (grpc-go accepts only ads or self here).
func adsConfigSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}
