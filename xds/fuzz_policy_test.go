package xds

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/sidecar/decode"
)

// FuzzPolicy builds chains from fuzzed entries: ForSidecar and
// ForProxyless either fail with an error wrapping an EntryError (or a
// plain one) or return validated resources that our sidecar decodes.
func FuzzPolicy(f *testing.F) {
	f.Add(`Service.Meta.version == v2`, "v2", float32(90), float32(10), "/v2/.*", "5xx", "50ms", uint8(1), uint32(2))
	f.Add(`v1 in Service.Tags or Service.Port == 8080`, "", float32(100), float32(0), "(", "cancelled", "x", uint8(4), uint32(0))
	f.Add(``, "nope", float32(33.33), float32(66.67), "", "", "", uint8(2), uint32(9))
	f.Fuzz(func(t *testing.T, filterExpr, subset string, w1, w2 float32, pathRegex, retryOn, backoff string, lb uint8, retries uint32) {
		snap := testMesh()
		policyMesh(snap, "http")
		policies := []string{"", "round_robin", "least_request", "random", "ring_hash", "maglev"}
		snap.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api",
			Subsets:      map[string]mesh.ResolverSubset{"v1": {Filter: `Service.Meta.version == v1`}, "v2": {Filter: filterExpr}},
			Failover:     map[string]mesh.ResolverFailover{"v1": {ServiceSubset: "v2"}},
			LoadBalancer: &mesh.LoadBalancer{Policy: policies[int(lb)%len(policies)], HashPolicies: []mesh.HashPolicy{{Field: "header", FieldValue: "x"}}},
		}}
		snap.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{
			{Weight: w1, ServiceSubset: "v1"}, {Weight: w2, Service: "api-canary"},
		}}}
		snap.Config.Routers = map[string]*mesh.ServiceRouter{"api": {Name: "api", Meta: map[string]string{KeyRetryBackoffBase: backoff},
			Routes: []mesh.Route{{
				Match:       &mesh.RouteMatch{PathRegex: pathRegex},
				Destination: &mesh.RouteDestination{ServiceSubset: subset, NumRetries: retries, RetryOn: []string{retryOn}},
			}}}}
		if res, err := ForSidecar(snap, testProxy); err == nil {
			if err := Validate(res); err != nil {
				t.Fatalf("ForSidecar returned resources that fail Validate: %v", err)
			}
			decodeAll(t, res)
		}
		if res, err := ForProxyless(snap); err == nil {
			if err := Validate(res); err != nil {
				t.Fatalf("ForProxyless returned resources that fail Validate: %v", err)
			}
		}
	})
}

// decodeAll requires our sidecar's decoder to accept every resource.
func decodeAll(t *testing.T, res *Resources) {
	t.Helper()
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
			}
			if err != nil {
				t.Fatalf("sidecar decoder rejects %s: %v", typ, err)
			}
		}
	}
}
