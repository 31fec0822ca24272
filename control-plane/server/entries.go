package server

import (
	"slices"
	"strings"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// configEntries names the Consul config entries that can have shaped the
// named resources of a node, so that a NACK points the operator at what to
// fix (DESIGN: "names the Consul config entry the rejected resource came
// from"). Resource names follow package xds: "public_listener" and
// "local_app" belong to the proxy's own service; "upstream:<id>" and route
// configurations "<id>" to the upstream service (id is the service, with
// "?dc=<dc>" for another datacenter); clusters and load assignments are
// "[<subset>.]<service>.default.<dc>.internal"; proxyless resources carry
// the service name. Only entries present in the model are listed.
func configEntries(snap *mesh.Snapshot, nodeID string, names []string) []string {
	if snap == nil {
		return nil
	}
	var out []string
	add := func(k mesh.EntryKind, name string) {
		ref := mesh.EntryRef{Kind: k, Name: name}.String()
		if !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	if snap.Config.ProxyDefaults != nil {
		add(mesh.KindProxyDefaults, "global")
	}
	for _, n := range names {
		svc := serviceOf(snap, nodeID, n)
		if svc == "" {
			continue
		}
		c := &snap.Config
		if c.ServiceDefaults[svc] != nil {
			add(mesh.KindServiceDefaults, svc)
		}
		if c.Routers[svc] != nil {
			add(mesh.KindServiceRouter, svc)
		}
		if c.Splitters[svc] != nil {
			add(mesh.KindServiceSplitter, svc)
		}
		if c.Resolvers[svc] != nil {
			add(mesh.KindServiceResolver, svc)
		}
	}
	slices.Sort(out)
	return out
}

// serviceOf is the service a resource name is about, per the naming above.
func serviceOf(snap *mesh.Snapshot, nodeID, name string) string {
	switch {
	case name == "public_listener" || name == "local_app":
		if p := snap.Proxy(nodeID); p != nil {
			return p.DestinationService
		}
		return ""
	case strings.HasSuffix(name, ".internal"):
		labels := strings.Split(strings.TrimSuffix(name, ".internal"), ".")
		if len(labels) >= 3 && labels[len(labels)-2] == "default" {
			return labels[len(labels)-3]
		}
		return ""
	}
	name = strings.TrimPrefix(name, "upstream:")
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	return name
}
