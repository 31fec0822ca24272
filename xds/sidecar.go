package xds

import (
	"errors"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// ErrUnknownProxy is returned (wrapped) by ForSidecar when the snapshot has
// no proxy with the requested ID: the sidecar registered under another ID,
// or its registration has not reached the snapshot yet. Test with
// errors.Is.
var ErrUnknownProxy = errors.New("unknown proxy")

// ForSidecar translates the mesh into the resources of the connect-proxy
// registered as proxyID: its public listener and local_app cluster, and for
// each upstream a listener, a route configuration (HTTP protocols) and an
// EDS cluster with its load assignment. A proxy receives only what its
// upstreams need, never the whole mesh.
//
// The result has passed Validate. An error names the generator and the
// resource or config entry at fault; the caller keeps serving what it had.
func ForSidecar(snap *mesh.Snapshot, proxyID string) (*Resources, error) {
	if snap == nil {
		return nil, fmt.Errorf("sidecar %s: nil snapshot", proxyID)
	}
	p := snap.Proxy(proxyID)
	if p == nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, ErrUnknownProxy)
	}
	items := make([]types.Resource, 0, 2+4*len(p.Upstreams))

	public, err := publicResources(snap, p)
	if err != nil {
		return nil, err
	}
	items = append(items, public...)

	upstreams, err := upstreamResources(snap, p)
	if err != nil {
		return nil, err
	}
	items = append(items, upstreams...)

	res, err := NewResources(items...)
	if err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, err)
	}
	if err := Validate(res); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, err)
	}
	return res, nil
}

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
