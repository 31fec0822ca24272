package xdsstatic

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// Forward is one outbound path: an HTTP listener on 127.0.0.1:Port whose
// single route sends everything to an EDS cluster of Endpoints.
type Forward struct {
	Name      string // listener, route configuration and cluster name
	Port      uint32
	HTTP2     bool // upstream speaks h2c (gRPC)
	Endpoints []decodetest.HostPort
}

// Snapshot is the snapshot holding fw at version.
func Snapshot(version string, fw ...Forward) (*cachev3.Snapshot, error) {
	res := map[string][]types.Resource{}
	for _, f := range fw {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], decodetest.HTTPListener(f.Name, "127.0.0.1", f.Port, f.Name))
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], decodetest.Route(f.Name, f.Name))
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], cluster(f.Name, f.HTTP2))
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], decodetest.CLA(f.Name, f.Endpoints...))
	}
	return build(version, res)
}

// Many is one HTTP listener on 127.0.0.1:port whose route configuration
// has n virtual hosts (domain svc-NNNNN) each forwarding to its own EDS
// cluster svc-NNNNN with one endpoint ep: n routes and n clusters.
func Many(version string, port uint32, n int, ep decodetest.HostPort) (*cachev3.Snapshot, error) {
	rc := decodetest.Route("many", "svc-00000", "svc-00000")
	res := map[string][]types.Resource{
		resourcev3.ListenerType: {decodetest.HTTPListener("many", "127.0.0.1", port, "many")},
	}
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		if i > 0 {
			vh := decodetest.Route(name, name, name).VirtualHosts[0]
			rc.VirtualHosts = append(rc.VirtualHosts, vh)
		}
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], cluster(name, false))
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], decodetest.CLA(name, ep))
	}
	res[resourcev3.RouteType] = []types.Resource{rc}
	return build(version, res)
}

func build(version string, res map[string][]types.Resource) (*cachev3.Snapshot, error) {
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
}

// cluster is an EDS cluster; h2 sets the v3 explicit HTTP/2 protocol
// option (h2c upstream), as the control plane does for grpc and http2
// services.
func cluster(name string, h2 bool) *clusterv3.Cluster {
	c := decodetest.EDSCluster(name)
	if h2 {
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": decodetest.MustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}},
				}},
			}),
		}
	}
	return c
}
