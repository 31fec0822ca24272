package xds

import (
	"slices"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// targetLoadAssignment is a target's ClusterLoadAssignment: the instances
// its subset filter selects at priority 0, then each failover target's at
// priorities 1, 2, ... Envoy, our sidecar and grpc-go all send traffic to
// the first priority with healthy endpoints. Priorities must be
// contiguous, so one left without endpoints is dropped and the next ones
// move up; an address already present at a higher priority is not
// repeated (grpc-go NACKs an address twice in one assignment).
//
// Health is Consul's (endpointHealth), and what is sent of it depends on
// the client:
//   - a sidecar without failover gets every instance, unhealthy ones
//     marked UNHEALTHY, as Consul sends them: when fewer than
//     healthy_panic_threshold (50 % by default) are healthy, Envoy and our
//     sidecar route to all of them. This rides out a Consul agent restart,
//     which reports every non-TTL check critical until it runs again.
//   - a sidecar with failover: Consul sends every instance too, with an
//     overprovisioning_factor of 100000 so that a priority keeps all its
//     load while one of its endpoints is healthy (failover when none is,
//     never panic before). Our sidecar does not implement that field and
//     grpc-go ignores it; the same loads come from sending only the healthy
//     endpoints while any priority has one, and every endpoint (all
//     UNHEALTHY, so all in panic) when none has.
//   - a proxyless gRPC client only gets healthy endpoints: grpc-go v1.85
//     drops every endpoint not HEALTHY or UNKNOWN (cdsbalancer
//     configbuilder.go) and has no panic mode, so unhealthy ones would only
//     cost bytes.
//
// Sidecars reach a service through its sidecars when it has any
// (meshInstances); proxyless clients reach its own instances.
func targetLoadAssignment(snap *mesh.Snapshot, t *resolvedTarget, proxyless bool) (*endpointv3.ClusterLoadAssignment, error) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: t.clusterName()}
	selectors := append([]endpointSelector{t.endpointSelector}, t.failover...)
	groups := make([][]hostPort, 0, len(selectors))
	anyHealthy := false
	for _, sel := range selectors {
		warning, err := includeWarning(&snap.Config, sel.target.Service)
		if err != nil {
			return nil, err
		}
		svc := snap.Service(sel.target.Service)
		var instances []mesh.Instance
		switch {
		case svc == nil:
		case proxyless:
			instances = svc.Instances
		default:
			instances = meshInstances(svc)
		}
		var keep func(*mesh.Instance) bool
		if sel.filter != nil {
			keep = sel.filter.Match
			if !proxyless && svc != nil && len(svc.Sidecars) > 0 {
				keep = frontedMatch(snap, svc, sel.filter.Match)
			}
		}
		picked := pickEndpoints(instances, sel.target.Datacenter, sel.onlyPassing || !warning, keep)
		anyHealthy = anyHealthy || slices.ContainsFunc(picked, func(p hostPort) bool { return p.healthy })
		groups = append(groups, picked)
	}
	onlyHealthy := proxyless || (len(selectors) > 1 && anyHealthy)
	seen := map[hostPort]bool{} // by address: weight and health zero
	var priority uint32
	for _, picked := range groups {
		picked = slices.DeleteFunc(picked, func(p hostPort) bool {
			if onlyHealthy && !p.healthy {
				return true
			}
			k := hostPort{host: p.host, port: p.port}
			if seen[k] {
				return true
			}
			seen[k] = true
			return false
		})
		if len(picked) == 0 {
			continue
		}
		cla.Endpoints = append(cla.Endpoints, locality(picked, priority))
		priority++
	}
	return cla, nil
}

// frontedMatch evaluates a subset filter for a sidecar endpoint against
// the service instance the sidecar fronts (its Service.Meta, Tags, ID...),
// which is what the filter's author describes; Consul copies the parent's
// tags and meta into a sidecar_service, so both agree by default. A
// sidecar whose fronted instance is unknown is judged by itself.
func frontedMatch(snap *mesh.Snapshot, svc *mesh.Service, match func(*mesh.Instance) bool) func(*mesh.Instance) bool {
	type nodeID struct{ node, id string }
	byID := make(map[nodeID]*mesh.Instance, len(svc.Instances))
	for i := range svc.Instances {
		byID[nodeID{svc.Instances[i].Node, svc.Instances[i].ID}] = &svc.Instances[i]
	}
	return func(sidecar *mesh.Instance) bool {
		if p := snap.Proxy(sidecar.ID); p != nil {
			if inst := byID[nodeID{sidecar.Node, p.DestinationServiceID}]; inst != nil {
				return match(inst)
			}
		}
		return match(sidecar)
	}
}
