package decode

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

var healthStatuses = map[corev3.HealthStatus]config.HealthStatus{
	corev3.HealthStatus_UNKNOWN:   config.HealthUnknown,
	corev3.HealthStatus_HEALTHY:   config.HealthHealthy,
	corev3.HealthStatus_UNHEALTHY: config.HealthUnhealthy,
	corev3.HealthStatus_DRAINING:  config.HealthDraining,
	corev3.HealthStatus_TIMEOUT:   config.HealthTimeout,
	corev3.HealthStatus_DEGRADED:  config.HealthDegraded,
}

// ClusterLoadAssignment decodes one EDS resource into its endpoints.
func ClusterLoadAssignment(cla *endpointv3.ClusterLoadAssignment) ([]config.Endpoint, error) {
	if err := checkSupported(cla); err != nil {
		return nil, fmt.Errorf("cluster_load_assignment %q: %w", cla.GetClusterName(), err)
	}
	eps, err := endpoints(cla)
	if err != nil {
		return nil, fmt.Errorf("cluster_load_assignment %q: %w", cla.GetClusterName(), err)
	}
	return eps, nil
}

// endpoints decodes a load assignment already checked against the
// allow-list (as part of its Cluster, or by ClusterLoadAssignment).
func endpoints(cla *endpointv3.ClusterLoadAssignment) ([]config.Endpoint, error) {
	return endpointsOf(cla, false)
}

// endpointsOf is endpoints; allowNames accepts DNS names as addresses.
func endpointsOf(cla *endpointv3.ClusterLoadAssignment, allowNames bool) ([]config.Endpoint, error) {
	if err := validate(cla); err != nil {
		return nil, err
	}
	var out []config.Endpoint
	for i, loc := range cla.GetEndpoints() {
		locality := localityName(loc.GetLocality())
		for j, lbe := range loc.GetLbEndpoints() {
			field := fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", i, j)
			if lbe.GetEndpoint() == nil {
				return nil, fmt.Errorf("%s.endpoint is required", field)
			}
			addr, err := socketAddressOf(lbe.GetEndpoint().GetAddress(), field+".endpoint.address", allowNames)
			if err != nil {
				return nil, err
			}
			health, ok := healthStatuses[lbe.GetHealthStatus()]
			if !ok {
				return nil, fmt.Errorf("%s.health_status: %s is not supported", field, lbe.GetHealthStatus())
			}
			out = append(out, config.Endpoint{
				Address:        addr,
				Weight:         u32(lbe.GetLoadBalancingWeight(), 1),
				Health:         health,
				Priority:       loc.GetPriority(),
				Locality:       locality,
				LocalityWeight: u32(loc.GetLoadBalancingWeight(), 0),
			})
		}
	}
	return out, nil
}

// localityName is "region/zone/sub_zone", empty when no locality is set.
func localityName(l *corev3.Locality) string {
	if l.GetRegion() == "" && l.GetZone() == "" && l.GetSubZone() == "" {
		return ""
	}
	return strings.Join([]string{l.GetRegion(), l.GetZone(), l.GetSubZone()}, "/")
}
