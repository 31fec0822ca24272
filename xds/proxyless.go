package xds

import (
	"fmt"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// ForProxyless translates the mesh into what proxyless gRPC clients
// (grpc-go's "xds:///<service>" resolver) need: for every typical service
// (not a connect-proxy, not a gateway) that has instances, an API listener
// named <service>, a route configuration <service> whose virtual host
// matches <service>, and the service's EDS cluster whose endpoints are its own
// instances (a proxyless client is not in the mesh and talks to the
// application directly, never to its sidecar).
//
// Everything stays inside what grpc-go v1.85 accepts: RDS over ADS,
// http_filters exactly [router], ROUND_ROBIN, EDS over ADS, every locality
// with a Locality and a non-zero weight, endpoints unique by address.
//
// The result has passed Validate, including the check that every API
// listener's route configuration exists.
func ForProxyless(snap *mesh.Snapshot) (*Resources, error) {
	if snap == nil {
		return nil, fmt.Errorf("proxyless: nil snapshot")
	}
	names := make([]string, 0, len(snap.Services))
	for name, svc := range snap.Services {
		if svc == nil || svc.Kind != mesh.KindTypical || len(svc.Instances) == 0 {
			// Proxies and gateways (any non-typical kind) are not gRPC services.
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)

	items := make([]types.Resource, 0, 4*len(names))
	for _, name := range names {
		svc := snap.Services[name]
		target := Target{Service: name, Datacenter: snap.Datacenter}
		clusterName := target.ClusterName()

		listener, err := apiListener(name)
		if err != nil {
			return nil, fmt.Errorf("proxyless: listeners for %s: %w", name, err)
		}
		// grpc-go ignores the cluster's HTTP protocol options (it always
		// speaks HTTP/2), so none are set.
		cluster, err := edsCluster(clusterName, DefaultConnectTimeout, ProtocolTCP)
		if err != nil {
			return nil, fmt.Errorf("proxyless: clusters for %s: %w", name, err)
		}
		warning, err := includeWarning(&snap.Config, name)
		if err != nil {
			return nil, fmt.Errorf("proxyless: endpoints for %s: %w", name, err)
		}
		items = append(items,
			listener,
			proxylessRouteConfig(name, clusterName),
			cluster,
			loadAssignment(clusterName, svc.Instances, snap.Datacenter, warning),
		)
	}

	res, err := NewResources(items...)
	if err != nil {
		return nil, fmt.Errorf("proxyless: %w", err)
	}
	if err := Validate(res); err != nil {
		return nil, fmt.Errorf("proxyless: %w", err)
	}
	return res, nil
}
