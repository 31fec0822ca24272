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
// matches <service> and holds the service's discovery chain (router,
// splitter, resolver, as for sidecars), and the EDS cluster of every
// target the chains reach, whose endpoints are the target's own instances
// (a proxyless client is not in the mesh and talks to the application
// directly, never to its sidecar).
//
// Everything stays inside what grpc-go v1.85 accepts: RDS over ADS,
// http_filters exactly [router], ROUND_ROBIN / RING_HASH / LEAST_REQUEST,
// EDS over ADS, every locality with a Locality and a non-zero weight,
// endpoints unique by address, num_retries >= 1. What grpc-go would ignore
// (route timeouts, rewrites, header changes, non-gRPC retry conditions,
// consecutive_* ejection, ...) is left out and listed in Warnings.
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

	w := &warnings{}
	cc := newChainCompiler(snap, true)
	items := make([]types.Resource, 0, 4*len(names))
	clusters := make(map[string]bool, len(names))
	for _, name := range names {
		listener, err := apiListener(name)
		if err != nil {
			return nil, fmt.Errorf("proxyless: listeners for %s: %w", name, err)
		}
		ch, err := cc.compile(name, snap.Datacenter, ProtocolGRPC)
		if err != nil {
			return nil, fmt.Errorf("proxyless: routes for %s: %w", name, err)
		}
		routes, err := chainRoutes(&snap.Config, ch)
		if err != nil {
			return nil, fmt.Errorf("proxyless: routes for %s: %w", name, err)
		}
		routes = grpcRoutes(routes, name, w)
		items = append(items, listener, proxylessRouteConfig(name, routes))
		for _, t := range ch.targets {
			cname := t.clusterName()
			if clusters[cname] {
				continue
			}
			clusters[cname] = true
			// grpc-go ignores the cluster's HTTP protocol options (it
			// always speaks HTTP/2), so none are set.
			cluster, err := edsCluster(cname, DefaultConnectTimeout, ProtocolTCP)
			if err != nil {
				return nil, fmt.Errorf("proxyless: clusters for %s: %w", name, err)
			}
			ext, err := clusterExt(&snap.Config, t.target.Service)
			if err != nil {
				return nil, fmt.Errorf("proxyless: clusters for %s: %s: %w", name, cname, err)
			}
			applyClusterPolicy(cluster, t, nil, ext, w)
			cla, err := targetLoadAssignment(snap, t, true)
			if err != nil {
				return nil, fmt.Errorf("proxyless: endpoints for %s: %w", name, err)
			}
			items = append(items, cluster, cla)
		}
	}

	res, err := NewResources(items...)
	if err != nil {
		return nil, fmt.Errorf("proxyless: %w", err)
	}
	if err := Validate(res); err != nil {
		return nil, fmt.Errorf("proxyless: %w", err)
	}
	res.warnings = w.list
	return res, nil
}
