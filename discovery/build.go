package discovery

import (
	"cmp"
	"maps"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Input is the raw material of a snapshot, as fetched from Consul. The
// builder shares slices and maps of Input (tags, meta) with the snapshot it
// builds, so an Input must not be mutated once it has been built from: the
// watcher replaces what it fetched, it never edits it.
type Input struct {
	Datacenter string
	// Index is the highest Consul index folded in (informational).
	Index uint64
	// Services maps a service name to what /v1/health/service/<name>
	// returned: every instance with its node and checks.
	Services map[string][]*api.ServiceEntry
	// Entries maps a config entry kind to what /v1/config/<kind> returned:
	// one JSON object per entry, not yet decoded.
	Entries map[mesh.EntryKind][]RawEntry
}

// RawEntry is one config entry as Consul's HTTP API returns it (a decoded
// JSON object). Decoding happens per entry in the builder, so that one bad
// entry costs only itself.
type RawEntry map[string]any

// BuildSnapshot turns fetched data into a snapshot. It is a pure function:
// no I/O, no clock, no logging. lastGood is the Config of the previous
// snapshot (nil for none): an entry that fails to decode keeps its previous
// good version from there, and the failure is listed in Config.Errors.
func BuildSnapshot(in *Input, lastGood *mesh.Config) *mesh.Snapshot {
	b := newBuilder()
	for name, entries := range in.Services {
		b.setService(name, entries)
	}
	return b.build(in.Datacenter, in.Index, in.Entries, lastGood)
}

// builder caches the conversion of each service and config entry, and the
// last snapshot it assembled, so that the watcher, which changes a few
// services at a time, rebuilds only what changed: unchanged *mesh.Service
// values are shared between consecutive snapshots (they are immutable).
// It is owned by one goroutine (the watcher's event loop).
type builder struct {
	services map[string]*serviceParts
	entries  map[mesh.EntryRef]*decodedEntry

	// prev is the last snapshot assembled; changed holds, for each service
	// changed since, its parts as prev saw them (nil: it was absent).
	prev    *mesh.Snapshot
	changed map[string]*serviceParts
	// fronting maps a destination service to the proxy services with
	// instances in front of it; proxyOwners maps a proxy ID to the proxy
	// services that hold a proxy with that ID.
	// Both are nearly always one name long.
	fronting    nameIndex
	proxyOwners nameIndex
}

func newBuilder() *builder {
	return &builder{
		services:    map[string]*serviceParts{},
		entries:     map[mesh.EntryRef]*decodedEntry{},
		changed:     map[string]*serviceParts{},
		fronting:    newNameIndex(),
		proxyOwners: newNameIndex(),
	}
}

// serviceParts is one service's converted instances. For a connect-proxy
// service, proxies[i] describes instances[i] and dests lists the distinct
// destination services.
type serviceParts struct {
	kind      mesh.ServiceKind
	instances []mesh.Instance
	proxies   []*mesh.Proxy
	dests     []string
}

// setService converts one service's health entries; nil or empty entries
// remove the service.
func (b *builder) setService(name string, entries []*api.ServiceEntry) {
	if len(entries) == 0 {
		b.replace(name, nil)
		return
	}
	b.replace(name, convertService(entries))
}

func (b *builder) removeService(name string) {
	if _, ok := b.services[name]; ok {
		b.replace(name, nil)
	}
}

// replace swaps a service's parts and keeps the indexes current.
func (b *builder) replace(name string, next *serviceParts) {
	cur := b.services[name]
	if _, ok := b.changed[name]; !ok && b.prev != nil {
		// Before the first build everything is new: nothing to track.
		b.changed[name] = cur
	}
	if cur != nil {
		for _, d := range cur.dests {
			b.fronting.remove(d, name)
		}
		for _, px := range cur.proxies {
			b.proxyOwners.remove(px.ID, name)
		}
	}
	if next == nil {
		delete(b.services, name)
		return
	}
	b.services[name] = next
	for _, d := range next.dests {
		b.fronting.add(d, name)
	}
	for _, px := range next.proxies {
		b.proxyOwners.add(px.ID, name)
	}
}

// build assembles a snapshot from the cached service parts and the raw
// config entries: from scratch the first time, afterwards by copying the
// previous snapshot's maps and redoing only the services that changed (and
// those whose sidecars changed).
func (b *builder) build(dc string, index uint64, entries map[mesh.EntryKind][]RawEntry, lastGood *mesh.Config) *mesh.Snapshot {
	snap := &mesh.Snapshot{Index: index, Datacenter: dc, Config: b.buildConfig(entries, lastGood)}
	if b.prev == nil {
		snap.Services = make(map[string]*mesh.Service, len(b.services))
		snap.Proxies = make(map[string]*mesh.Proxy, len(b.proxyOwners.first))
		block := make([]mesh.Service, 0, len(b.services))
		for name, p := range b.services {
			block = append(block, mesh.Service{Name: name, Kind: p.kind, Instances: p.instances, Sidecars: b.sidecars(name)})
			snap.Services[name] = &block[len(block)-1]
			for _, px := range p.proxies {
				// proxyWinner's rule, without its lookups.
				if old, ok := snap.Proxies[px.ID]; !ok || px.Node < old.Node {
					snap.Proxies[px.ID] = px
				}
			}
		}
		b.prev = snap
		return snap
	}
	snap.Services = maps.Clone(b.prev.Services)
	snap.Proxies = maps.Clone(b.prev.Proxies)
	affected := map[string]bool{}
	proxyIDs := map[string]bool{}
	for name, old := range b.changed {
		affected[name] = true
		for _, p := range []*serviceParts{old, b.services[name]} {
			if p == nil {
				continue
			}
			for _, d := range p.dests {
				affected[d] = true
			}
			for _, px := range p.proxies {
				proxyIDs[px.ID] = true
			}
		}
	}
	block := make([]mesh.Service, 0, len(affected))
	for name := range affected {
		p := b.services[name]
		if p == nil {
			delete(snap.Services, name)
			continue
		}
		block = append(block, mesh.Service{Name: name, Kind: p.kind, Instances: p.instances, Sidecars: b.sidecars(name)})
		snap.Services[name] = &block[len(block)-1]
	}
	for id := range proxyIDs {
		if px := b.proxyWinner(id); px != nil {
			snap.Proxies[id] = px
		} else {
			delete(snap.Proxies, id)
		}
	}
	b.prev = snap
	clear(b.changed)
	return snap
}

// sidecars lists the connect-proxy instances in front of dest, sorted by
// (Node, ID).
func (b *builder) sidecars(dest string) []mesh.Instance {
	var list []mesh.Instance
	for proxyService := range b.fronting.names(dest) {
		p := b.services[proxyService]
		for i, px := range p.proxies {
			if px.DestinationService == dest {
				list = append(list, p.instances[i])
			}
		}
	}
	slices.SortFunc(list, func(a, b mesh.Instance) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.ID, b.ID))
	})
	return list
}

// proxyWinner returns the proxy with the given ID. Proxy IDs are unique per
// node only: should two nodes reuse one, the lowest node name wins, so the
// result is deterministic.
func (b *builder) proxyWinner(id string) *mesh.Proxy {
	var win *mesh.Proxy
	for name := range b.proxyOwners.names(id) {
		for _, px := range b.services[name].proxies {
			if px.ID == id && (win == nil || px.Node < win.Node) {
				win = px
			}
		}
	}
	return win
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func nilIfEmptyMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}
