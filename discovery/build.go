package discovery

import (
	"cmp"
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

// builder caches the conversion of each service and config entry so that
// the watcher, which changes a few services at a time, rebuilds only those.
// It is owned by one goroutine (the watcher's event loop).
type builder struct {
	services map[string]*serviceParts
	entries  map[mesh.EntryRef]*decodedEntry
}

func newBuilder() *builder {
	return &builder{
		services: map[string]*serviceParts{},
		entries:  map[mesh.EntryRef]*decodedEntry{},
	}
}

// serviceParts is one service's converted instances. For a connect-proxy
// service, proxies[i] describes instances[i].
type serviceParts struct {
	kind      mesh.ServiceKind
	instances []mesh.Instance
	proxies   []*mesh.Proxy
}

// setService converts one service's health entries; nil or empty entries
// remove the service.
func (b *builder) setService(name string, entries []*api.ServiceEntry) {
	if len(entries) == 0 {
		delete(b.services, name)
		return
	}
	b.services[name] = convertService(entries)
}

func (b *builder) removeService(name string) { delete(b.services, name) }

func convertService(entries []*api.ServiceEntry) *serviceParts {
	sorted := make([]*api.ServiceEntry, 0, len(entries))
	for _, e := range entries {
		if e != nil && e.Service != nil && e.Node != nil {
			sorted = append(sorted, e)
		}
	}
	slices.SortFunc(sorted, func(a, b *api.ServiceEntry) int {
		return cmp.Or(cmp.Compare(a.Node.Node, b.Node.Node), cmp.Compare(a.Service.ID, b.Service.ID))
	})
	p := &serviceParts{instances: make([]mesh.Instance, len(sorted))}
	for i, e := range sorted {
		p.instances[i] = convertInstance(e)
		if e.Service.Kind == api.ServiceKindConnectProxy {
			p.kind = mesh.KindConnectProxy
		}
	}
	if p.kind == mesh.KindConnectProxy {
		p.proxies = make([]*mesh.Proxy, len(sorted))
		for i, e := range sorted {
			p.proxies[i] = convertProxy(e, &p.instances[i])
		}
	}
	return p
}

func convertInstance(e *api.ServiceEntry) mesh.Instance {
	s, n := e.Service, e.Node
	addr := s.Address
	if addr == "" {
		// Consul's documented fallback: no service address means the node's.
		addr = n.Address
	}
	dc := n.Datacenter
	if dc == "" {
		dc = s.Datacenter
	}
	return mesh.Instance{
		ID:         s.ID,
		Service:    s.Service,
		Node:       n.Node,
		Datacenter: dc,
		Address:    addr,
		Port:       s.Port,
		Tags:       nilIfEmpty(s.Tags),
		Meta:       nilIfEmptyMap(s.Meta),
		NodeMeta:   nilIfEmptyMap(n.Meta),
		Health:     aggregateHealth(e.Checks),
		Weights:    mesh.Weights{Passing: s.Weights.Passing, Warning: s.Weights.Warning},
	}
}

// aggregateHealth is Consul's rule (api.HealthChecks.AggregatedStatus):
// maintenance beats critical beats warning beats passing; no checks is
// passing. A status Consul does not define counts as critical.
func aggregateHealth(checks api.HealthChecks) mesh.Health {
	switch checks.AggregatedStatus() {
	case api.HealthPassing:
		return mesh.HealthPassing
	case api.HealthWarning:
		return mesh.HealthWarning
	case api.HealthMaint:
		return mesh.HealthMaintenance
	default:
		return mesh.HealthCritical
	}
}

func convertProxy(e *api.ServiceEntry, inst *mesh.Instance) *mesh.Proxy {
	p := &mesh.Proxy{
		ID:      inst.ID,
		Name:    inst.Service,
		Node:    inst.Node,
		Address: inst.Address,
		Port:    inst.Port,
		Health:  inst.Health,
	}
	pc := e.Service.Proxy
	if pc == nil {
		return p
	}
	p.DestinationService = pc.DestinationServiceName
	p.DestinationServiceID = pc.DestinationServiceID
	p.LocalServiceAddress = pc.LocalServiceAddress
	p.LocalServicePort = pc.LocalServicePort
	p.Config = renderConfig(pc.Config)
	if len(pc.Upstreams) > 0 {
		p.Upstreams = make([]mesh.Upstream, len(pc.Upstreams))
		for i, u := range pc.Upstreams {
			typ := string(u.DestinationType)
			if typ == "" {
				typ = string(api.UpstreamDestTypeService)
			}
			p.Upstreams[i] = mesh.Upstream{
				DestinationType:  typ,
				DestinationName:  u.DestinationName,
				Datacenter:       u.Datacenter,
				LocalBindAddress: u.LocalBindAddress,
				LocalBindPort:    u.LocalBindPort,
				Config:           renderConfig(u.Config),
			}
		}
	}
	return p
}

// build assembles a snapshot from the cached service parts and the raw
// config entries.
func (b *builder) build(dc string, index uint64, entries map[mesh.EntryKind][]RawEntry, lastGood *mesh.Config) *mesh.Snapshot {
	snap := &mesh.Snapshot{
		Index:      index,
		Datacenter: dc,
		Services:   make(map[string]*mesh.Service, len(b.services)),
		Proxies:    map[string]*mesh.Proxy{},
		Config:     b.buildConfig(entries, lastGood),
	}
	sidecars := map[string][]mesh.Instance{}
	for name, p := range b.services {
		snap.Services[name] = &mesh.Service{Name: name, Kind: p.kind, Instances: p.instances}
		for i, px := range p.proxies {
			if px.DestinationService != "" {
				sidecars[px.DestinationService] = append(sidecars[px.DestinationService], p.instances[i])
			}
			// Proxy IDs are unique per node only; should two nodes reuse
			// one, the lowest node name wins so the result is deterministic.
			if old, ok := snap.Proxies[px.ID]; !ok || px.Node < old.Node {
				snap.Proxies[px.ID] = px
			}
		}
	}
	for dest, list := range sidecars {
		svc := snap.Services[dest]
		if svc == nil {
			// A sidecar whose service is not (yet) registered: nothing to
			// attach it to, it is still listed under its own name and in
			// Proxies.
			continue
		}
		slices.SortFunc(list, func(a, b mesh.Instance) int {
			return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.ID, b.ID))
		})
		svc.Sidecars = list
	}
	return snap
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
