package xdsstatic

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/decode"
	"github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// decodeAll runs every resource of snap through the sidecar's decoder, as
// the sidecar would on receiving it, and returns the clusters' protocols
// and the number of virtual hosts.
func decodeAll(t *testing.T, snap *cachev3.Snapshot) (map[string]config.Protocol, int) {
	t.Helper()
	protos := map[string]config.Protocol{}
	vhosts := 0
	for _, r := range snap.GetResources(resourcev3.ListenerType) {
		if _, err := decode.Listener(r.(*listenerv3.Listener)); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range snap.GetResources(resourcev3.RouteType) {
		rc, err := decode.RouteConfiguration(r.(*routev3.RouteConfiguration))
		if err != nil {
			t.Fatal(err)
		}
		vhosts += len(rc.VirtualHosts)
	}
	for _, r := range snap.GetResources(resourcev3.ClusterType) {
		c, err := decode.Cluster(r.(*clusterv3.Cluster))
		if err != nil {
			t.Fatal(err)
		}
		protos[c.Name] = c.Protocol
	}
	for _, r := range snap.GetResources(resourcev3.EndpointType) {
		if _, err := decode.ClusterLoadAssignment(r.(*endpointv3.ClusterLoadAssignment)); err != nil {
			t.Fatal(err)
		}
	}
	return protos, vhosts
}

func TestSnapshotDecodes(t *testing.T) {
	ep := []decodetest.HostPort{{Host: "127.0.0.1", Port: 8080}}
	tests := []struct {
		name       string
		fw         []Forward
		wantProtos map[string]config.Protocol
	}{
		{"http1", []Forward{{Name: "app", Port: 15001, Endpoints: ep}}, map[string]config.Protocol{"app": config.HTTP1}},
		{"h2c and http1", []Forward{
			{Name: "app", Port: 15001, Endpoints: ep},
			{Name: "grpc", Port: 15002, HTTP2: true, Endpoints: ep},
		}, map[string]config.Protocol{"app": config.HTTP1, "grpc": config.HTTP2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Snapshot("1", tt.fw...)
			if err != nil {
				t.Fatal(err)
			}
			protos, vhosts := decodeAll(t, snap)
			if len(protos) != len(tt.wantProtos) || vhosts != len(tt.fw) {
				t.Fatalf("decoded %d clusters and %d virtual hosts, want %d and %d", len(protos), vhosts, len(tt.wantProtos), len(tt.fw))
			}
			for n, p := range tt.wantProtos {
				if protos[n] != p {
					t.Errorf("cluster %s protocol = %v, want %v", n, protos[n], p)
				}
			}
		})
	}
}

func TestManyDecodes(t *testing.T) {
	snap, err := Many("1", 15003, 50, decodetest.HostPort{Host: "127.0.0.1", Port: 8080})
	if err != nil {
		t.Fatal(err)
	}
	protos, vhosts := decodeAll(t, snap)
	if len(protos) != 50 || vhosts != 50 {
		t.Errorf("decoded %d clusters and %d virtual hosts, want 50 and 50", len(protos), vhosts)
	}
}
