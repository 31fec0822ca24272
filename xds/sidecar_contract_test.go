package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/sidecar/decode"
)

// TestSidecarDecoderAcceptsForSidecar is the contract with our own sidecar:
// its decoder NACKs any populated field it does not implement, so every
// resource ForSidecar produces, in every golden scenario, must decode.
func TestSidecarDecoderAcceptsForSidecar(t *testing.T) {
	for _, tt := range allSidecarCases() {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			tt.change(snap)
			res, err := ForSidecar(snap, testProxy)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range TypeURLs() {
				for _, item := range res.Items(typ) {
					var err error
					switch r := item.(type) {
					case *listenerv3.Listener:
						_, err = decode.Listener(r)
					case *routev3.RouteConfiguration:
						_, err = decode.RouteConfiguration(r)
					case *clusterv3.Cluster:
						_, err = decode.Cluster(r)
					case *endpointv3.ClusterLoadAssignment:
						_, err = decode.ClusterLoadAssignment(r)
					default:
						t.Fatalf("unexpected %T", item)
					}
					if err != nil {
						t.Errorf("sidecar decoder rejects %s %q: %v", kindOf(typ), cache.GetResourceName(item), err)
					}
				}
			}
		})
	}
}
