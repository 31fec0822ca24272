package xds

import (
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// upstreamResources are, per upstream, its listener, its route
// configuration (HTTP protocols only: the discovery chain's routes), and
// the cluster and load assignment of every target its chain reaches. Two
// upstreams with the same ID or the same bind address are an error: Envoy
// would keep one of them, silently.
func upstreamResources(snap *mesh.Snapshot, p *mesh.Proxy) ([]types.Resource, error) {
	items := make([]types.Resource, 0, 4*len(p.Upstreams))
	ids := make(map[string]bool, len(p.Upstreams))
	binds := make(map[string]string, len(p.Upstreams))
	clusters := make(map[string]bool, len(p.Upstreams))
	cc := newChainCompiler(snap, false)
	// The registration's upstream Config (connect_timeout_ms, limits,
	// passive_health_check) applies to the clusters of the upstream's
	// discovery chain.
	regConfig := make(map[Target]mesh.UpstreamConfig, len(p.Upstreams))
	for _, u := range p.Upstreams {
		if len(u.Config) == 0 {
			continue
		}
		rc, err := registrationUpstreamConfig(u)
		if err != nil {
			return nil, fmt.Errorf("clusters for %s: upstream %s: %w", p.ID, upstreamID(u, snap.Datacenter), err)
		}
		regConfig[Target{Service: u.DestinationName, Datacenter: orDefault(u.Datacenter, snap.Datacenter)}] = rc
	}
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
		ch, err := cc.compile(u.DestinationName, orDefault(u.Datacenter, snap.Datacenter), proto)
		if err != nil {
			return nil, fmt.Errorf("routes for %s: upstream %s: %w", p.ID, id, err)
		}
		tcpCluster := ""
		if ch.tcpTarget != nil {
			tcpCluster = ch.tcpTarget.clusterName()
		}
		listener, err := upstreamListener(id, host, u.LocalBindPort, proto, tcpCluster)
		if err != nil {
			return nil, fmt.Errorf("listeners for %s: upstream %s: %w", p.ID, id, err)
		}
		items = append(items, listener)
		if proto.IsHTTP() {
			routes, err := chainRoutes(&snap.Config, ch)
			if err != nil {
				return nil, fmt.Errorf("routes for %s: upstream %s: %w", p.ID, id, err)
			}
			items = append(items, routeConfigWith(id, []string{"*"}, routes))
		}
		for _, t := range ch.targets {
			name := t.clusterName()
			if clusters[name] {
				continue
			}
			clusters[name] = true
			// Consul applies an upstream's config (the Overrides entry
			// named like the upstream, then the registration's Config) to
			// every cluster of its discovery chain, whatever service a
			// split or redirect reaches. A target shared with an earlier
			// upstream keeps that upstream's cluster (as in Consul, where
			// the cluster name is the target's).
			up := upstreamConfigFor(&snap.Config, p.DestinationService, u.DestinationName)
			if rc, ok := regConfig[Target{Service: u.DestinationName, Datacenter: orDefault(u.Datacenter, snap.Datacenter)}]; ok {
				up = overlay(up, rc)
			}
			res, err := sidecarTarget(snap, p, t, up)
			if err != nil {
				return nil, err
			}
			items = append(items, res...)
		}
	}
	return items, nil
}

// sidecarTarget is one target's cluster (with the policy of its resolver,
// the proxy's UpstreamConfig and the extension keys) and load assignment.
func sidecarTarget(snap *mesh.Snapshot, p *mesh.Proxy, t *resolvedTarget, up mesh.UpstreamConfig) ([]types.Resource, error) {
	name := t.clusterName()
	cluster, err := edsCluster(name, DefaultConnectTimeout, t.protocol)
	if err != nil {
		return nil, fmt.Errorf("clusters for %s: %w", p.ID, err)
	}
	ext, err := clusterExt(&snap.Config, t.target.Service)
	if err != nil {
		return nil, fmt.Errorf("clusters for %s: %s: %w", p.ID, name, err)
	}
	applyClusterPolicy(cluster, t, &up, ext, nil)
	cla, err := targetLoadAssignment(snap, t, false)
	if err != nil {
		return nil, fmt.Errorf("endpoints for %s: %s: %w", p.ID, name, err)
	}
	return []types.Resource{cluster, cla}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
