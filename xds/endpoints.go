package xds

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// IncludeWarningKey is the config key that lets instances whose checks are
// in warning receive traffic (by default only passing ones do). It is read
// from the destination's service-defaults Meta, else from the global
// proxy-defaults Config; its value is a Go bool ("true", "false", "1", ...).
const IncludeWarningKey = "consulate_include_warning"

// includeWarning says whether warning instances of service get traffic.
func includeWarning(cfg *mesh.Config, service string) (bool, error) {
	if sd := cfg.ServiceDefaults[service]; sd != nil {
		if v, ok := sd.Meta[IncludeWarningKey]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("%s: Meta[%s]: %w",
					mesh.EntryRef{Kind: mesh.KindServiceDefaults, Name: service}, IncludeWarningKey, err)
			}
			return b, nil
		}
	}
	if pd := cfg.ProxyDefaults; pd != nil {
		if v, ok := pd.Config[IncludeWarningKey]; ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return false, fmt.Errorf("%s: Config[%s]: %w",
					mesh.EntryRef{Kind: mesh.KindProxyDefaults, Name: "global"}, IncludeWarningKey, err)
			}
			return b, nil
		}
	}
	return false, nil
}

// meshInstances are the instances that receive a service's mesh traffic:
// its sidecars when it has any (then the service is only reachable through
// them, even when none is healthy), otherwise its own instances, plain.
func meshInstances(svc *mesh.Service) []mesh.Instance {
	if svc == nil {
		return nil
	}
	if len(svc.Sidecars) > 0 {
		return svc.Sidecars
	}
	return svc.Instances
}

// loadAssignment builds the ClusterLoadAssignment of one cluster from the
// instances that may receive its traffic, for a sidecar: every instance of
// the target's datacenter, each with the health status and weight Consul's
// own xDS server gives it (endpointHealth), so that Envoy's (and our
// sidecar's) healthy_panic_threshold can route to unhealthy ones when too
// few are healthy.
//
// Every endpoint sits in one locality with load_balancing_weight 1: grpc-go
// drops a locality without weight (with a mere warning) and NACKs a
// locality without a Locality message, so both are always set. Endpoints
// are unique by address (grpc-go NACKs duplicates) and sorted, so that
// equal health gives equal bytes.
func loadAssignment(clusterName string, instances []mesh.Instance, dc string, includeWarning bool) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: clusterName}
	if picked := pickEndpoints(instances, dc, !includeWarning, nil); len(picked) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{locality(picked, 0)}
	}
	return cla
}

// hostPort is one picked endpoint.
type hostPort struct {
	host    string
	port    int
	weight  int
	healthy bool
}

// maxConsulWeight is the largest endpoint weight Consul's xDS server sends
// (agent/xds/endpoints.go, calculateEndpointHealthAndWeight).
const maxConsulWeight = 128

// endpointHealth is what Consul 1.14's xDS server sends for an instance
// (agent/xds/endpoints.go, calculateEndpointHealthAndWeight):
//   - passing: HEALTHY, weight Weights.Passing;
//   - warning: weight Weights.Warning, HEALTHY unless onlyPassing (a
//     resolver subset's OnlyPassing; for us also the default, see
//     IncludeWarningKey), then UNHEALTHY;
//   - critical and maintenance (Consul's maintenance check is critical):
//     UNHEALTHY, weight Weights.Passing;
//   - a weight below 1 (Weights.Warning 0 says "no traffic in warning")
//     makes the endpoint UNHEALTHY with weight 1; weights are capped at 128.
//
// Consul weighs an instance 1 when its registration has no Weights; the
// agent always fills Weights.Passing >= 1, so a zero Passing weight is a
// registration without Weights. (Consul uses Weights.Warning for a
// critical instance that also has a check in warning; the model only has
// the aggregated status, so such an instance weighs Weights.Passing.)
func endpointHealth(inst *mesh.Instance, onlyPassing bool) (healthy bool, weight int) {
	hasWeights := inst.Weights.Passing > 0
	weight = 1
	if hasWeights {
		weight = inst.Weights.Passing
	}
	switch inst.Health {
	case mesh.HealthPassing:
		healthy = true
	case mesh.HealthWarning:
		healthy = !onlyPassing
		if hasWeights {
			weight = inst.Weights.Warning
		}
	}
	if weight < 1 {
		healthy, weight = false, 1
	}
	return healthy, min(weight, maxConsulWeight)
}

// pickEndpoints keeps the instances of datacenter dc that keep reports
// true for (nil: all), with their health and weight (endpointHealth),
// unique by address (a healthy registration wins over an unhealthy one at
// the same address) and sorted.
func pickEndpoints(instances []mesh.Instance, dc string, onlyPassing bool, keep func(*mesh.Instance) bool) []hostPort {
	picked := make([]hostPort, 0, len(instances))
	for i := range instances {
		inst := &instances[i]
		if inst.Datacenter != "" && inst.Datacenter != dc {
			continue
		}
		if inst.Address == "" || inst.Port <= 0 || inst.Port > 65535 {
			continue // nothing to connect to (Consul accepts port 0 registrations)
		}
		if keep != nil && !keep(inst) {
			continue
		}
		healthy, weight := endpointHealth(inst, onlyPassing)
		picked = append(picked, hostPort{host: inst.Address, port: inst.Port, weight: weight, healthy: healthy})
	}
	slices.SortFunc(picked, func(a, b hostPort) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.port, b.port), compareHealthyFirst(a.healthy, b.healthy))
	})
	return slices.CompactFunc(picked, func(a, b hostPort) bool { return a.host == b.host && a.port == b.port })
}

// compareHealthyFirst orders healthy before unhealthy.
func compareHealthyFirst(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	default:
		return 1
	}
}

// locality is one locality (weight 1) at priority holding picked.
func locality(picked []hostPort, priority uint32) *endpointv3.LocalityLbEndpoints {
	lbEndpoints := make([]*endpointv3.LbEndpoint, len(picked))
	for i, p := range picked {
		lbEndpoints[i] = &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress(p.host, p.port)},
			},
			HealthStatus: healthStatus(p.healthy),
			// At most 128 (endpointHealth), so a locality's sum stays far
			// below 2^32 (Envoy and grpc-go reject a larger sum).
			LoadBalancingWeight: wrapperspb.UInt32(uint32(p.weight)),
		}
	}
	return &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{},
		LbEndpoints:         lbEndpoints,
		LoadBalancingWeight: wrapperspb.UInt32(1),
		Priority:            priority,
	}
}

// healthStatus is the EDS health_status of a picked endpoint.
func healthStatus(healthy bool) corev3.HealthStatus {
	if healthy {
		return corev3.HealthStatus_HEALTHY
	}
	return corev3.HealthStatus_UNHEALTHY
}

// socketAddress is a TCP address; host is an IP (v4 or v6) or a name.
func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Protocol:      corev3.SocketAddress_TCP,
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// hostPortString renders an address for error messages.
func hostPortString(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
