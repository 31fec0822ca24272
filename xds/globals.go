package xds

import (
	"reflect"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// SameGlobals reports whether everything in two model snapshots other than
// the per-name maps (Services, Proxies, and the service-defaults, routers,
// splitters and resolvers by service) and the index is equal: what every
// translation may read. Fields added to mesh.Snapshot or mesh.Config later
// are compared here as a whole, so a change in them counts as global until
// someone attributes it (when unsure, translate again).
func SameGlobals(a, b *mesh.Snapshot) bool {
	if a.Config.ProxyDefaults != b.Config.ProxyDefaults {
		return false
	}
	strip := func(s *mesh.Snapshot) mesh.Snapshot {
		c := *s
		c.Index = 0
		c.Services, c.Proxies = nil, nil
		c.Config.ProxyDefaults = nil
		c.Config.ServiceDefaults, c.Config.Routers, c.Config.Splitters, c.Config.Resolvers = nil, nil, nil, nil
		return c
	}
	return reflect.DeepEqual(strip(a), strip(b))
}
