package xds

import (
	"fmt"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

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
	res, failed, err := ForProxylessKeeping(snap, nil)
	if err != nil {
		return nil, err
	}
	if len(failed) > 0 {
		return nil, failed[0].Err
	}
	return res, nil
}

// ServiceFailure is a service whose proxyless configuration could not be
// translated (Err, typically an *EntryError naming the config entry).
type ServiceFailure struct {
	Service string
	// Kept is true when the service kept its resources from the previous
	// translation, false when it has none (it never translated).
	Kept bool
	Err  error
}

// ForProxylessKeeping is ForProxyless for a control plane that must not let
// one broken config entry freeze every proxyless client: a service whose
// chain fails to translate keeps its listener, route configuration,
// clusters and load assignments from prev (the last good result; nil for
// none), and is listed in the failures; every other service is translated
// from snap. An error is returned only when the result as a whole is
// invalid.
func ForProxylessKeeping(snap *mesh.Snapshot, prev *Resources) (*Resources, []ServiceFailure, error) {
	if snap == nil {
		return nil, nil, fmt.Errorf("proxyless: nil snapshot")
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
	seen := map[resource.Type]map[string]bool{}
	add := func(typ resource.Type, name string, r types.Resource) {
		if seen[typ] == nil {
			seen[typ] = map[string]bool{}
		}
		if !seen[typ][name] {
			seen[typ][name] = true
			items = append(items, r)
		}
	}
	var failed []ServiceFailure
	for _, name := range names {
		// A failed service's warnings are dropped with its translation.
		sw := &warnings{}
		got, err := proxylessService(snap, cc, name, sw)
		if err != nil {
			kept := prev.proxylessServiceItems(name)
			failed = append(failed, ServiceFailure{Service: name, Kept: kept != nil, Err: err})
			got = kept
		} else {
			w.list = append(w.list, sw.list...)
		}
		for _, r := range got {
			typ, terr := typeURLOf(r)
			if terr != nil {
				return nil, nil, fmt.Errorf("proxyless: %w", terr)
			}
			add(typ, cache.GetResourceName(r), r)
		}
	}

	res, err := NewResources(items...)
	if err != nil {
		return nil, nil, fmt.Errorf("proxyless: %w", err)
	}
	if err := Validate(res); err != nil {
		return nil, nil, fmt.Errorf("proxyless: %w", err)
	}
	res.warnings = w.list
	return res, failed, nil
}

// proxylessService is one service's API listener, route configuration, and
// the clusters and load assignments its chain reaches.
func proxylessService(snap *mesh.Snapshot, cc *chainCompiler, name string, w *warnings) ([]types.Resource, error) {
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
	items := []types.Resource{listener, proxylessRouteConfig(name, routes)}
	for _, t := range ch.targets {
		cname := t.clusterName()
		// grpc-go ignores the cluster's HTTP protocol options (it always
		// speaks HTTP/2), so none are set.
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
	return items, nil
}

// proxylessServiceItems is what r holds for one service's proxyless
// configuration (its listener and route configuration, and the clusters
// and load assignments that route configuration names), nil when r is nil
// or has no listener for it.
func (r *Resources) proxylessServiceItems(name string) []types.Resource {
	if r == nil {
		return nil
	}
	find := func(typ resource.Type, n string) types.Resource {
		g := r.groups[typ]
		if i, ok := slices.BinarySearch(g.names, n); ok {
			return g.items[i]
		}
		return nil
	}
	l, rc := find(resource.ListenerType, name), find(resource.RouteType, name)
	if l == nil || rc == nil {
		return nil
	}
	out := []types.Resource{l, rc}
	for _, c := range routeClusters(rc.(*routev3.RouteConfiguration), nil) {
		if cl := find(resource.ClusterType, c); cl != nil {
			out = append(out, cl)
		}
		if cla := find(resource.EndpointType, c); cla != nil {
			out = append(out, cla)
		}
	}
	return out
}
