package server

import (
	"slices"
	"strings"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
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
//
// A listener or route configuration is the whole discovery chain (issue 6):
// the service's router, splitter and resolver and, transitively, those of
// every service they name. A cluster or load assignment is its service's
// entries, the services its resolver redirects or fails over to, and the
// proxy's own service-defaults (its UpstreamConfig sets limits and outlier
// detection).
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
	c := &snap.Config
	if c.ProxyDefaults != nil {
		add(mesh.KindProxyDefaults, "global")
	}
	own := ""
	if p := snap.Proxy(nodeID); p != nil {
		own = p.DestinationService
	}
	for _, n := range names {
		if n == "public_listener" || n == "local_app" {
			// The inbound side reads only the proxy's own service-defaults
			// (protocol, local timeouts, inbound limits).
			if own != "" && c.ServiceDefaults[own] != nil {
				add(mesh.KindServiceDefaults, own)
			}
			continue
		}
		svc, isCluster := serviceOf(n)
		if svc == "" {
			continue
		}
		if isCluster && own != "" && c.ServiceDefaults[own] != nil {
			add(mesh.KindServiceDefaults, own)
		}
		for _, s := range xds.ChainServices(c, isCluster, svc) {
			if c.ServiceDefaults[s] != nil {
				add(mesh.KindServiceDefaults, s)
			}
			if c.Routers[s] != nil {
				add(mesh.KindServiceRouter, s)
			}
			if c.Splitters[s] != nil {
				add(mesh.KindServiceSplitter, s)
			}
			if c.Resolvers[s] != nil {
				add(mesh.KindServiceResolver, s)
			}
		}
	}
	slices.Sort(out)
	return out
}

// serviceOf is the service an outbound resource name is about, per the
// naming above, and whether the resource is a cluster or load assignment.
func serviceOf(name string) (svc string, cluster bool) {
	if strings.HasSuffix(name, ".internal") {
		labels := strings.Split(strings.TrimSuffix(name, ".internal"), ".")
		if len(labels) >= 3 && labels[len(labels)-2] == "default" {
			return labels[len(labels)-3], true
		}
		return "", false
	}
	name = strings.TrimPrefix(name, "upstream:")
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	return name, false
}
