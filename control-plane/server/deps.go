package server

import (
	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// A sidecar's translation reads, from the model: its own proxy
// registration; for every service its chains can reach (its upstreams, the
// services their routers, splitters and resolvers name, transitively) and
// for its own destination service, the *mesh.Service, the proxy
// registrations of that service's sidecars, and the service's
// service-defaults, service-router, service-splitter and service-resolver;
// and the global parts of the model (datacenter, proxy-defaults). These are
// the xds package's reads (chain.go, endpoints_chain.go, upstreams.go,
// public.go); deps over-approximates them (every name an entry mentions, in
// every datacenter), so that skipping a proxy whose inputs did not change
// never skips a change it would have seen.

// serviceDeps are the service names whose model data a sidecar's
// translation may read.
type serviceDeps map[string]struct{}

// sidecarDeps computes the service names the sidecar proxyID's translation
// reads from snap; nil if the proxy is not in snap.
func sidecarDeps(snap *mesh.Snapshot, proxyID string) serviceDeps {
	p := snap.Proxy(proxyID)
	if p == nil {
		return nil
	}
	roots := []string{p.DestinationService}
	for _, u := range p.Upstreams {
		roots = append(roots, u.DestinationName)
	}
	names := xds.ChainServices(&snap.Config, false, roots...)
	deps := make(serviceDeps, len(names))
	for _, name := range names {
		deps[name] = struct{}{}
	}
	return deps
}

// modelDiff is what changed between two model snapshots, as far as sidecar
// translations can tell: all (something global, or something this code does
// not know how to attribute), the service names whose service data or
// config entries changed, and the proxy IDs whose registration changed.
type modelDiff struct {
	all      bool
	services map[string]bool
	proxies  map[string]bool
}

// affects reports whether a sidecar with these deps, built from the older
// model, must be translated again for the newer one.
func (d *modelDiff) affects(proxyID string, deps serviceDeps) bool {
	if d.all || deps == nil || d.proxies[proxyID] {
		return true
	}
	for name := range deps {
		if d.services[name] {
			return true
		}
	}
	return false
}

// diffModels compares two snapshots by pointer: discovery shares every
// unchanged *mesh.Service, *mesh.Proxy and decoded config entry between
// snapshots, so an equal pointer is unchanged content. A different pointer
// with equal content only costs a translation whose versions then match.
func diffModels(old, cur *mesh.Snapshot) *modelDiff {
	d := &modelDiff{services: map[string]bool{}, proxies: map[string]bool{}}
	if old == nil || cur == nil || !sameGlobals(old, cur) {
		d.all = true
		return d
	}
	if old == cur {
		return d
	}
	diffMap(old.Services, cur.Services, d.services)
	diffMap(old.Config.ServiceDefaults, cur.Config.ServiceDefaults, d.services)
	diffMap(old.Config.Routers, cur.Config.Routers, d.services)
	diffMap(old.Config.Splitters, cur.Config.Splitters, d.services)
	diffMap(old.Config.Resolvers, cur.Config.Resolvers, d.services)
	diffMap(old.Proxies, cur.Proxies, d.proxies)
	// A sidecar's proxy registration is read by the translations that
	// reach the service it fronts (subset filters judge the fronted
	// instance).
	for id := range d.proxies {
		if p := old.Proxies[id]; p != nil {
			d.services[p.DestinationService] = true
		}
		if p := cur.Proxies[id]; p != nil {
			d.services[p.DestinationService] = true
		}
	}
	return d
}

// diffMap marks in changed every key whose value differs between a and b
// (present in one only, or another pointer).
func diffMap[V comparable](a, b map[string]V, changed map[string]bool) {
	inBoth := 0
	for k, va := range a {
		vb, ok := b[k]
		if ok {
			inBoth++
		}
		if !ok || va != vb {
			changed[k] = true
		}
	}
	if inBoth == len(b) {
		return // b has no key a lacks: skip the second pass (10,000 lookups)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed[k] = true
		}
	}
}

// sameGlobals reports whether everything in two snapshots other than the
// per-name maps diffModels compares is equal (xds.SameGlobals: a change in
// a field deps does not attribute rebuilds every proxy).
func sameGlobals(a, b *mesh.Snapshot) bool { return xds.SameGlobals(a, b) }
