package xds

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// upstreamResources are, per upstream, its listener, its route
// configuration (HTTP protocols only), and its target's cluster and load
// assignment. Two upstreams with the same ID or the same bind address are
// an error: Envoy would keep one of them, silently.
func upstreamResources(snap *mesh.Snapshot, p *mesh.Proxy) ([]types.Resource, error) {
	items := make([]types.Resource, 0, 4*len(p.Upstreams))
	ids := make(map[string]bool, len(p.Upstreams))
	binds := make(map[string]string, len(p.Upstreams))
	clusters := make(map[string]bool, len(p.Upstreams))
	for _, u := range p.Upstreams {
		if u.DestinationType != "" && u.DestinationType != "service" {
			return nil, fmt.Errorf("listeners for %s: upstream %s: destination type %q is not supported",
				p.ID, u.DestinationName, u.DestinationType)
		}
		if u.DestinationName == "" {
			return nil, fmt.Errorf("listeners for %s: upstream without a destination name", p.ID)
		}
		id := upstreamID(u, snap.Datacenter)
		if ids[id] {
			return nil, fmt.Errorf("listeners for %s: upstream %s is declared twice", p.ID, id)
		}
		ids[id] = true
		if u.LocalBindPort <= 0 || u.LocalBindPort > 65535 {
			return nil, fmt.Errorf("listeners for %s: upstream %s: local bind port %d is not a TCP port", p.ID, id, u.LocalBindPort)
		}
		host := orDefault(u.LocalBindAddress, defaultLoopbackAddress)
		bind := hostPortString(host, u.LocalBindPort)
		if other, dup := binds[bind]; dup {
			return nil, fmt.Errorf("listeners for %s: upstreams %s and %s both bind %s", p.ID, other, id, bind)
		}
		binds[bind] = id

		proto, err := serviceProtocol(&snap.Config, u.DestinationName)
		if err != nil {
			return nil, fmt.Errorf("listeners for %s: upstream %s: %w", p.ID, id, err)
		}
		target := Target{Service: u.DestinationName, Datacenter: orDefault(u.Datacenter, snap.Datacenter)}
		clusterName := target.ClusterName()

		listener, err := upstreamListener(id, host, u.LocalBindPort, proto, clusterName)
		if err != nil {
			return nil, fmt.Errorf("listeners for %s: upstream %s: %w", p.ID, id, err)
		}
		items = append(items, listener)
		if proto.IsHTTP() {
			items = append(items, upstreamRouteConfig(id, clusterName))
		}
		if clusters[clusterName] {
			continue
		}
		clusters[clusterName] = true
		cluster, err := edsCluster(clusterName, DefaultConnectTimeout, proto)
		if err != nil {
			return nil, fmt.Errorf("clusters for %s: %w", p.ID, err)
		}
		warning, err := includeWarning(&snap.Config, target.Service)
		if err != nil {
			return nil, fmt.Errorf("endpoints for %s: %s: %w", p.ID, clusterName, err)
		}
		cla := loadAssignment(clusterName, meshInstances(snap.Service(target.Service)), target.Datacenter, warning)
		items = append(items, cluster, cla)
	}
	return items, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
