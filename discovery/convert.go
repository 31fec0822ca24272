package discovery

import (
	"cmp"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// convertService converts what /v1/health/service/<name> returned for one
// service into its instances (sorted by Node, ID) and, for a connect-proxy
// service, its proxies.
func convertService(entries []*api.ServiceEntry) *serviceParts {
	sorted := entries
	if !slices.IsSortedFunc(entries, compareEntries) {
		// Input is shared and must not be reordered in place.
		sorted = slices.SortedFunc(slices.Values(entries), compareEntries)
	}
	// Malformed entries sort first: skip them without touching Input.
	for len(sorted) > 0 && !validEntry(sorted[0]) {
		sorted = sorted[1:]
	}
	p := &serviceParts{instances: make([]mesh.Instance, len(sorted))}
	for i, e := range sorted {
		p.instances[i] = convertInstance(e)
		if e.Service.Kind == api.ServiceKindConnectProxy {
			p.kind = mesh.KindConnectProxy
		}
	}
	if p.kind == mesh.KindConnectProxy {
		p.proxies = make([]*mesh.Proxy, len(sorted))
		block := make([]mesh.Proxy, len(sorted))
		for i, e := range sorted {
			p.proxies[i] = &block[i]
			var prev *mesh.Proxy
			var prevCfg *api.AgentServiceConnectProxyConfig
			if i > 0 {
				prev, prevCfg = &block[i-1], sorted[i-1].Service.Proxy
			}
			convertProxy(&block[i], e, &p.instances[i], prev, prevCfg)
			if d := block[i].DestinationService; d != "" && !slices.Contains(p.dests, d) {
				p.dests = append(p.dests, d)
			}
		}
	}
	return p
}

func validEntry(e *api.ServiceEntry) bool {
	return e != nil && e.Service != nil && e.Node != nil
}

// compareEntries orders by (Node, ID); malformed entries first.
func compareEntries(a, b *api.ServiceEntry) int {
	va, vb := validEntry(a), validEntry(b)
	if !va || !vb {
		return cmp.Compare(boolInt(va), boolInt(vb))
	}
	return cmp.Or(cmp.Compare(a.Node.Node, b.Node.Node), cmp.Compare(a.Service.ID, b.Service.ID))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
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

// convertProxy fills p. Instances of one proxy service usually share their
// Config and upstreams: when they equal those of prev (converted from
// prevCfg), the rendered values are shared (they are immutable).
func convertProxy(p *mesh.Proxy, e *api.ServiceEntry, inst *mesh.Instance, prev *mesh.Proxy, prevCfg *api.AgentServiceConnectProxyConfig) {
	*p = mesh.Proxy{
		ID:      inst.ID,
		Name:    inst.Service,
		Node:    inst.Node,
		Address: inst.Address,
		Port:    inst.Port,
		Health:  inst.Health,
	}
	pc := e.Service.Proxy
	if pc == nil {
		return
	}
	p.DestinationService = pc.DestinationServiceName
	p.DestinationServiceID = pc.DestinationServiceID
	p.LocalServiceAddress = pc.LocalServiceAddress
	p.LocalServicePort = pc.LocalServicePort
	if prevCfg != nil && flatEqual(pc.Config, prevCfg.Config) {
		p.Config = prev.Config
	} else {
		p.Config = renderConfig(pc.Config)
	}
	if prevCfg != nil && upstreamsEqual(pc.Upstreams, prevCfg.Upstreams) {
		p.Upstreams = prev.Upstreams
	} else if len(pc.Upstreams) > 0 {
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
}

// flatEqual reports whether two opaque Config maps hold the same scalar
// values (anything nested counts as different: it is only an optimization).
func flatEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			return false
		}
		switch va.(type) {
		case nil, string, float64, bool:
			if va != vb {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// upstreamsEqual compares the upstream fields the model keeps.
func upstreamsEqual(a, b []api.Upstream) bool {
	return slices.EqualFunc(a, b, func(x, y api.Upstream) bool {
		return x.DestinationType == y.DestinationType && x.DestinationName == y.DestinationName &&
			x.Datacenter == y.Datacenter && x.LocalBindAddress == y.LocalBindAddress &&
			x.LocalBindPort == y.LocalBindPort && flatEqual(x.Config, y.Config)
	})
}
