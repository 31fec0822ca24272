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
		id, host, err := checkUpstream(snap, p, u, ids, binds)
		if err != nil {
			return nil, err
		}
		var rc *mesh.UpstreamConfig
		if c, ok := regConfig[Target{Service: u.DestinationName, Datacenter: orDefault(u.Datacenter, snap.Datacenter)}]; ok {
			rc = &c
		}
		tr, err := translateUpstream(snap, p, u, id, host, cc, rc)
		if err != nil {
			return nil, err
		}
		items = append(items, tr.listener)
		if tr.routes != nil {
			items = append(items, tr.routes)
		}
		for _, t := range tr.targets {
			// A target shared with an earlier upstream keeps that
			// upstream's cluster (as in Consul, where the cluster name is
			// the target's).
			if clusters[t.name] {
				continue
			}
			clusters[t.name] = true
			items = append(items, t.cluster, t.cla)
		}
	}
	return items, nil
}

// checkUpstream checks what makes an upstream unusable on its own or next
// to the proxy's other upstreams (ids and binds hold those seen before it,
// and get this one's) and returns its ID and bind host.
func checkUpstream(snap *mesh.Snapshot, p *mesh.Proxy, u mesh.Upstream, ids map[string]bool, binds map[string]string) (id, host string, err error) {
	if u.DestinationType != "" && u.DestinationType != "service" {
		return "", "", fmt.Errorf("listeners for %s: upstream %s: destination type %q is not supported",
			p.ID, u.DestinationName, u.DestinationType)
	}
	if u.DestinationName == "" {
		return "", "", fmt.Errorf("listeners for %s: upstream without a destination name", p.ID)
	}
	id = upstreamID(u, snap.Datacenter)
	if ids[id] {
		return "", "", fmt.Errorf("listeners for %s: upstream %s is declared twice", p.ID, id)
	}
	ids[id] = true
	if u.LocalBindPort <= 0 || u.LocalBindPort > 65535 {
		return "", "", fmt.Errorf("listeners for %s: upstream %s: local bind port %d is not a TCP port", p.ID, id, u.LocalBindPort)
	}
	host = orDefault(u.LocalBindAddress, defaultLoopbackAddress)
	bind := hostPortString(host, u.LocalBindPort)
	if other, dup := binds[bind]; dup {
		return "", "", fmt.Errorf("listeners for %s: upstreams %s and %s both bind %s", p.ID, other, id, bind)
	}
	binds[bind] = id
	return id, host, nil
}

// upstreamTranslation is one upstream's resources: its listener, its
// route configuration (nil for tcp) and a cluster and load assignment per
// target its chain reaches, sorted by cluster name.
type upstreamTranslation struct {
	listener types.Resource
	routes   types.Resource
	targets  []targetResources
	// listenerArgs are what upstreamListener made listener from.
	listenerArgs upstreamListenerArgs
}

// upstreamListenerArgs are upstreamListener's arguments: the listener is a
// function of them alone.
type upstreamListenerArgs struct {
	id, host   string
	port       int
	proto      Protocol
	tcpCluster string
}

type targetResources struct {
	name    string // the cluster's and the load assignment's
	cluster types.Resource
	cla     types.Resource
}

// translateUpstream translates one upstream u (ID id, bound on host) of
// proxy p. rc is the upstream's registration Config, nil when it has none.
// What it reads from p is DestinationService (whose service-defaults
// UpstreamConfig applies) and, for error messages, ID.
func translateUpstream(snap *mesh.Snapshot, p *mesh.Proxy, u mesh.Upstream, id, host string, cc *chainCompiler, rc *mesh.UpstreamConfig) (upstreamTranslation, error) {
	var out upstreamTranslation
	proto, err := serviceProtocol(&snap.Config, u.DestinationName)
	if err != nil {
		return out, fmt.Errorf("listeners for %s: upstream %s: %w", p.ID, id, err)
	}
	ch, err := cc.compile(u.DestinationName, orDefault(u.Datacenter, snap.Datacenter), proto)
	if err != nil {
		return out, fmt.Errorf("routes for %s: upstream %s: %w", p.ID, id, err)
	}
	tcpCluster := ""
	if ch.tcpTarget != nil {
		tcpCluster = ch.tcpTarget.clusterName()
	}
	listener, err := upstreamListener(id, host, u.LocalBindPort, proto, tcpCluster)
	if err != nil {
		return out, fmt.Errorf("listeners for %s: upstream %s: %w", p.ID, id, err)
	}
	out.listener = listener
	out.listenerArgs = upstreamListenerArgs{id: id, host: host, port: u.LocalBindPort, proto: proto, tcpCluster: tcpCluster}
	if proto.IsHTTP() {
		routes, err := chainRoutes(&snap.Config, ch)
		if err != nil {
			return out, fmt.Errorf("routes for %s: upstream %s: %w", p.ID, id, err)
		}
		out.routes = routeConfigWith(id, []string{"*"}, routes)
	}
	// Consul applies an upstream's config (the Overrides entry named like
	// the upstream, then the registration's Config) to every cluster of its
	// discovery chain, whatever service a split or redirect reaches.
	up := upstreamConfigFor(&snap.Config, p.DestinationService, u.DestinationName)
	if rc != nil {
		up = overlay(up, *rc)
	}
	for _, t := range ch.targets {
		res, err := sidecarTarget(snap, p, t, up)
		if err != nil {
			return out, err
		}
		out.targets = append(out.targets, targetResources{name: t.clusterName(), cluster: res[0], cla: res[1]})
	}
	return out, nil
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
