package server

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// Make-before-break. go-control-plane answers a node's open watches in no
// particular order when a snapshot is set, so a route naming a new cluster
// can reach the proxy before that cluster and its endpoints (Envoy then
// answers 503 NC until they arrive), and a cluster can be removed before
// the route that stopped using it. The xDS protocol's "eventual consistency
// considerations" ask a management server to add clusters and endpoints
// first, then the listeners and routes that use them, and to remove them
// only once nothing names them. So a change that adds or removes clusters
// is set in steps (planSteps); the builder sets the next step once every
// stream of the node has answered (ACK or NACK) the versions of the step
// before, or after stepTimeout, whichever comes first.

// stepTimeout bounds how long a step waits for the node's answers: a client
// that never answers (or only subscribes to part of a type) delays the
// change by this much, never blocks it.
const stepTimeout = 2 * time.Second

// staged is a node's change in progress.
type staged struct {
	// next are the snapshots still to set, in order; the last is the
	// target (the node's built.versions).
	next []*cache.Snapshot
	// wait are the versions, by type URL, every stream of the node must
	// answer before next[0] is set.
	wait     map[string]string
	deadline time.Time
}

// planSteps returns the snapshots to set, in order, to move a node from cur
// (what it was last set; nil for none) to target; the last is target.
//
//   - Clusters added: first the union of old and new clusters and endpoints
//     under the old listeners and routes.
//   - Clusters removed: then the new listeners and routes over the union.
//   - Then target itself.
//
// Every step is consistent (each route's clusters and each cluster's
// endpoints are in it). A change that adds and removes no cluster (an
// endpoint moved, a route's retry policy changed) is set at once.
func planSteps(cur, target *cache.Snapshot) []*cache.Snapshot {
	if cur == nil {
		return []*cache.Snapshot{target}
	}
	ci, ei := cache.GetResponseType(resource.ClusterType), cache.GetResponseType(resource.EndpointType)
	added := !keysWithin(target.Resources[ci].Items, cur.Resources[ci].Items)
	removed := !keysWithin(cur.Resources[ci].Items, target.Resources[ci].Items)
	if !added && !removed {
		return []*cache.Snapshot{target}
	}
	var steps []*cache.Snapshot
	union := func(routesFrom *cache.Snapshot) *cache.Snapshot {
		s := &cache.Snapshot{}
		for i := range s.Resources {
			s.Resources[i] = routesFrom.Resources[i]
		}
		s.Resources[ci] = unionOf(cur.Resources[ci], target.Resources[ci], cur.VersionMap[resource.ClusterType], target.VersionMap[resource.ClusterType])
		s.Resources[ei] = unionOf(cur.Resources[ei], target.Resources[ei], cur.VersionMap[resource.EndpointType], target.VersionMap[resource.EndpointType])
		s.VersionMap = unionVersionMap(cur, target, routesFrom)
		return s
	}
	if added {
		steps = append(steps, union(cur))
	}
	if removed {
		steps = append(steps, union(target))
	}
	steps = append(steps, target)
	// Drop a step that changes nothing from the one before it.
	out := steps[:0]
	prev := versionsOf(cur)
	for _, s := range steps {
		if v := versionsOf(s); v != prev || s == target {
			out = append(out, s)
			prev = v
		}
	}
	return out
}

// keysWithin reports whether every key of a is in b.
func keysWithin(a, b map[string]types.ResourceWithTTL) bool {
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// unionOf is new's resources plus old's that new does not have. oldV and
// newV are the per-resource versions (VersionMap) of each. A union with the
// same content as old or new keeps that one's version, so an unneeded step
// is recognised as such (planSteps drops it) and nothing is re-sent; any
// other union's version is derived from its resources' versions.
func unionOf(old, new cache.Resources, oldV, newV map[string]string) cache.Resources {
	if keysWithin(old.Items, new.Items) {
		return new
	}
	items := maps.Clone(new.Items)
	if items == nil {
		items = map[string]types.ResourceWithTTL{}
	}
	for k, v := range old.Items {
		if _, ok := items[k]; !ok {
			items[k] = v
		}
	}
	sameAsOld := len(items) == len(old.Items)
	names := make([]string, 0, len(items))
	for k := range items {
		names = append(names, k)
		if _, inNew := new.Items[k]; inNew && (newV[k] == "" || newV[k] != oldV[k]) {
			sameAsOld = false
		}
	}
	if sameAsOld {
		return old
	}
	slices.Sort(names)
	h := sha256.New()
	for _, k := range names {
		v := oldV[k]
		if _, inNew := new.Items[k]; inNew {
			v = newV[k]
		}
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return cache.Resources{Version: "u" + hex.EncodeToString(h.Sum(nil)[:8]), Items: items}
}

// withVersionMap fills s's per-resource versions (delta xDS) unless the
// translator did (xds does, from content). The cache would otherwise fill
// them lazily, under its own lock, in a snapshot planSteps reads later
// from the builder: done here, before the snapshot is set or shared, the
// cache only ever reads it.
func withVersionMap(s *cache.Snapshot) error {
	if s == nil || s.VersionMap != nil {
		return nil
	}
	return s.ConstructVersionMap()
}

// unionVersionMap is the delta-xDS per-resource versions of a union step:
// clusters and endpoints from both, the other types from routesFrom. Nil
// only if either snapshot has none (withVersionMap sees that they do).
func unionVersionMap(cur, target, routesFrom *cache.Snapshot) map[string]map[string]string {
	if cur.VersionMap == nil || target.VersionMap == nil {
		return nil
	}
	out := maps.Clone(routesFrom.VersionMap)
	for _, typ := range []string{resource.ClusterType, resource.EndpointType} {
		m := maps.Clone(cur.VersionMap[typ])
		if m == nil {
			m = map[string]string{}
		}
		maps.Copy(m, target.VersionMap[typ])
		out[typ] = m
	}
	return out
}

// waitFor is what the node must answer after prev is set before next may
// be: the versions of the types that changed between them.
func waitFor(prev, next *cache.Snapshot) map[string]string {
	w := map[string]string{}
	for i := range next.Resources {
		if next.Resources[i].Version == prev.Resources[i].Version {
			continue
		}
		if typ, err := cache.GetResponseTypeURL(types.ResponseType(i)); err == nil {
			w[typ] = next.Resources[i].Version
		}
	}
	return w
}
