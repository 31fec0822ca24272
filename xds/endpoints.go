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

const maxEndpointWeight = 1 << 16

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
// instances that may receive its traffic. Only passing instances (and
// warning ones when includeWarning) of the target's datacenter are kept.
//
// Every endpoint sits in one locality with load_balancing_weight 1: grpc-go
// drops a locality without weight (with a mere warning) and NACKs a
// locality without a Locality message, so both are always set. Endpoints
// are unique by address (grpc-go NACKs duplicates) and sorted, so that
// equal health gives equal bytes.
func loadAssignment(clusterName string, instances []mesh.Instance, dc string, includeWarning bool) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: clusterName}
	if picked := pickEndpoints(instances, dc, includeWarning, nil); len(picked) > 0 {
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{locality(picked, 0)}
	}
	return cla
}

// hostPort is one picked endpoint.
type hostPort struct {
	host   string
	port   int
	weight int
}

// pickEndpoints keeps the instances of datacenter dc that may receive
// traffic (passing, and warning when includeWarning) and that keep
// reports true for (nil: all), unique by address and sorted.
func pickEndpoints(instances []mesh.Instance, dc string, includeWarning bool, keep func(*mesh.Instance) bool) []hostPort {
	picked := make([]hostPort, 0, len(instances))
	for i := range instances {
		inst := &instances[i]
		if inst.Datacenter != "" && inst.Datacenter != dc {
			continue
		}
		if inst.Address == "" || inst.Port <= 0 || inst.Port > 65535 {
			continue // nothing to connect to (Consul accepts port 0 registrations)
		}
		var weight int
		switch inst.Health {
		case mesh.HealthPassing:
			weight = inst.Weights.Passing
		case mesh.HealthWarning:
			if !includeWarning {
				continue
			}
			weight = inst.Weights.Warning
		default:
			continue
		}
		if keep != nil && !keep(inst) {
			continue
		}
		// Consul's default weight is 1 for both states; 0 means "unset" in
		// a registration without Weights. Envoy requires >= 1.
		picked = append(picked, hostPort{host: inst.Address, port: inst.Port, weight: max(weight, 1)})
	}
	slices.SortFunc(picked, func(a, b hostPort) int {
		return cmp.Or(cmp.Compare(a.host, b.host), cmp.Compare(a.port, b.port))
	})
	return slices.CompactFunc(picked, func(a, b hostPort) bool { return a.host == b.host && a.port == b.port })
}

// locality is one locality (weight 1) at priority holding picked.
func locality(picked []hostPort, priority uint32) *endpointv3.LocalityLbEndpoints {
	lbEndpoints := make([]*endpointv3.LbEndpoint, len(picked))
	for i, p := range picked {
		lbEndpoints[i] = &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
				Endpoint: &endpointv3.Endpoint{Address: socketAddress(p.host, p.port)},
			},
			HealthStatus: corev3.HealthStatus_HEALTHY,
			// Capped at 2^16 so that a locality's sum stays below 2^32 for up
			// to 65,536 endpoints (Envoy and grpc-go reject a larger sum).
			LoadBalancingWeight: wrapperspb.UInt32(uint32(min(p.weight, maxEndpointWeight))),
		}
	}
	return &endpointv3.LocalityLbEndpoints{
		Locality:            &corev3.Locality{},
		LbEndpoints:         lbEndpoints,
		LoadBalancingWeight: wrapperspb.UInt32(1),
		Priority:            priority,
	}
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
