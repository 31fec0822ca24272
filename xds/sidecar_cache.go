package xds

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// SidecarCache is ForSidecar with a memory: it keeps each upstream's
// translated resources (listener, route configuration, clusters and load
// assignments, with their content versions, validated) and reuses them for
// every proxy that has the same upstream and for the next model, as long
// as what the translation read is the same. A change to one service
// re-translates the upstreams that reach it once, not once per proxy, and
// a proxy rebuilt because one of its upstreams changed re-translates only
// that one. Listeners and local_app clusters, which are functions of a
// few settings (address, port, protocol, timeouts), are kept by those
// settings, whatever the model: proxies with the same ones share them, and
// a global change (proxy-defaults) does not make them again.
//
// What a translation read (see deps.go in control-plane/server for the
// same rules): the global parts of the model (datacenter, proxy-defaults,
// everything sameGlobals compares), and for every service the upstream's
// discovery chain can reach (transitively through routers, splitters,
// resolver redirects and failovers), plus the proxy's own destination
// service: its *mesh.Service, its four config entries and the proxy
// registrations of its sidecars. An entry is reused only if every one of
// those is the same pointer in the new model (discovery shares unchanged
// values between snapshots; the model is immutable), so a stale resource
// cannot be served; a change of the globals drops everything.
//
// A translation that fails is not kept: ForSidecar then translates the
// whole proxy without the cache, so errors are exactly ForSidecar's.
// Results are equal to ForSidecar's, versions included.
//
// The zero value is ready. A SidecarCache is safe for concurrent use; the
// *Resources it returns share protos with each other (they are immutable).
type SidecarCache struct {
	mu sync.Mutex
	// globals is the last model seen; every entry was made from a model
	// with the same global parts. gen changes when the globals did (and
	// every entry was dropped): an entry made under another gen is not
	// stored.
	globals *mesh.Snapshot
	gen     uint64
	// epoch counts models seen, for eviction: an entry not used for
	// evictAfter models is dropped.
	epoch     uint64
	upstreams map[upstreamKey]*upstreamEntry
	// pure are resources that are functions of their key alone (listeners,
	// local_app clusters): valid whatever the model, kept across global
	// changes, so a proxy-defaults write does not make them again.
	pure map[pureKey]*pureEntry

	hits, misses atomic.Int64
}

// evictAfter is how many models an unused entry survives: quiet proxies
// keep theirs across many changes; proxies gone (or upstreams removed)
// give theirs back eventually.
const evictAfter = 256

// upstreamKey is everything of a proxy and one of its upstreams that its
// translation reads (translateUpstream), other than the model: two proxies
// with equal keys get equal resources for that upstream.
type upstreamKey struct {
	destType, destName, datacenter string
	bindAddress                    string
	bindPort                       int
	config                         string // the upstream's Config, canonical
	// downstream is the proxy's destination service, whose
	// service-defaults UpstreamConfig applies.
	downstream string
}

func keyOf(p *mesh.Proxy, u mesh.Upstream) upstreamKey {
	k := upstreamKey{destType: u.DestinationType, destName: u.DestinationName, datacenter: u.Datacenter,
		bindAddress: u.LocalBindAddress, bindPort: u.LocalBindPort, downstream: p.DestinationService}
	if len(u.Config) > 0 {
		keys := make([]string, 0, len(u.Config))
		for k := range u.Config {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for _, key := range keys {
			b.WriteString(key)
			b.WriteByte(0)
			b.WriteString(u.Config[key])
			b.WriteByte(0)
		}
		k.config = b.String()
	}
	return k
}

// cachedItem is a translated resource, validated, with its content version
// and, for a listener, its references.
type cachedItem struct {
	versionedItem
	refs *references
}

// inputs are the model values one entry's translation read, by pointer.
type inputs struct {
	services []serviceInputs
}

type serviceInputs struct {
	name      string
	service   *mesh.Service
	defaults  *mesh.ServiceDefaults
	router    *mesh.ServiceRouter
	splitter  *mesh.ServiceSplitter
	resolver  *mesh.ServiceResolver
	registers []*mesh.Proxy // of service.Sidecars, in order
}

// inputsOf records, from snap, the values of services and of every service
// their chains reach.
func inputsOf(snap *mesh.Snapshot, services ...string) inputs {
	var in inputs
	for _, name := range ChainServices(&snap.Config, false, services...) {
		si := serviceInputs{name: name, service: snap.Services[name], defaults: snap.Config.ServiceDefaults[name],
			router: snap.Config.Routers[name], splitter: snap.Config.Splitters[name], resolver: snap.Config.Resolvers[name]}
		if si.service != nil {
			for _, sc := range si.service.Sidecars {
				si.registers = append(si.registers, snap.Proxies[sc.ID])
			}
		}
		in.services = append(in.services, si)
	}
	return in
}

// same reports whether snap holds the values in recorded.
func (in *inputs) same(snap *mesh.Snapshot) bool {
	for i := range in.services {
		si := &in.services[i]
		if snap.Services[si.name] != si.service || snap.Config.ServiceDefaults[si.name] != si.defaults ||
			snap.Config.Routers[si.name] != si.router || snap.Config.Splitters[si.name] != si.splitter ||
			snap.Config.Resolvers[si.name] != si.resolver {
			return false
		}
		// The service is the same pointer, so its Sidecars are too.
		if si.service != nil {
			for j, sc := range si.service.Sidecars {
				if snap.Proxies[sc.ID] != si.registers[j] {
					return false
				}
			}
		}
	}
	return true
}

// ChainServices lists roots and every service their discovery chains can
// reach, each once, in breadth-first order: every name a router's
// destinations, a splitter's splits or a resolver's redirect and failovers
// mention, in every datacenter (an over-approximation: it never misses
// one). With resolverOnly only resolvers are followed (what shapes a
// target's cluster and endpoints). An empty name (an entry's own service)
// is skipped. The translation cache, the control plane's dependency
// tracking and its /status entry lists all walk chains with it.
func ChainServices(cfg *mesh.Config, resolverOnly bool, roots ...string) []string {
	seen := make(map[string]struct{}, len(roots))
	var out []string
	queue := slices.Clone(roots)
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if _, dup := seen[name]; dup || name == "" {
			continue
		}
		seen[name] = struct{}{}
		out = append(out, name)
		if r := cfg.Routers[name]; r != nil && !resolverOnly {
			for _, rt := range r.Routes {
				if rt.Destination != nil {
					queue = append(queue, rt.Destination.Service)
				}
			}
		}
		if s := cfg.Splitters[name]; s != nil && !resolverOnly {
			for _, sp := range s.Splits {
				queue = append(queue, sp.Service)
			}
		}
		if r := cfg.Resolvers[name]; r != nil {
			if r.Redirect != nil {
				queue = append(queue, r.Redirect.Service)
			}
			for _, f := range r.Failover {
				queue = append(queue, f.Service)
				for _, t := range f.Targets {
					queue = append(queue, t.Service)
				}
			}
		}
	}
	return out
}

type entryCommon struct {
	gen      uint64
	in       inputs
	lastUsed atomic.Uint64 // epoch
}

type upstreamEntry struct {
	entryCommon
	listener cachedItem
	routes   *cachedItem
	targets  []cachedTarget
}

type cachedTarget struct {
	cluster, cla cachedItem
}

// pureKey names a resource made by a pure function of the key's fields:
// the public listener (publicListener), the local_app cluster
// (localAppCluster) or an upstream listener (upstreamListener).
type pureKey struct {
	kind       pureKind
	upstream   upstreamListenerArgs // upstream listener
	host       string               // public listener, local_app
	port       int
	proto      Protocol
	timeout    time.Duration // public: request timeout; local_app: connect timeout
	hasTimeout bool          // public: a request timeout is set
}

type pureKind uint8

const (
	purePublicListener pureKind = iota + 1
	pureLocalApp
	pureUpstreamListener
)

type pureEntry struct {
	item     cachedItem
	lastUsed atomic.Uint64
}

// begin brings the cache to snap's globals and returns the generation
// entries made from snap belong to.
func (c *SidecarCache) begin(snap *mesh.Snapshot) (gen, epoch uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.globals != snap {
		if c.globals == nil || !SameGlobals(c.globals, snap) {
			c.upstreams = nil
			c.gen++
		}
		c.globals = snap
		c.epoch++
		if c.epoch%evictAfter == 0 {
			c.evict()
		}
	}
	if c.upstreams == nil {
		c.upstreams = map[upstreamKey]*upstreamEntry{}
	}
	if c.pure == nil {
		c.pure = map[pureKey]*pureEntry{}
	}
	return c.gen, c.epoch
}

// evict drops the entries not used for evictAfter models. c.mu is held.
func (c *SidecarCache) evict() {
	for k, e := range c.upstreams {
		if c.epoch-e.lastUsed.Load() >= evictAfter {
			delete(c.upstreams, k)
		}
	}
	for k, e := range c.pure {
		if c.epoch-e.lastUsed.Load() >= evictAfter {
			delete(c.pure, k)
		}
	}
}

// Len is how many upstream entries and listeners and local_app clusters
// the cache holds.
func (c *SidecarCache) Len() (upstreams, pure int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.upstreams), len(c.pure)
}

// Stats are how many upstream translations, listeners and local_app
// clusters were reused (hits) and made (misses) since the cache was made.
func (c *SidecarCache) Stats() (hits, misses int64) {
	return c.hits.Load(), c.misses.Load()
}

// ForSidecar is ForSidecar(snap, proxyID), reusing what it can.
func (c *SidecarCache) ForSidecar(snap *mesh.Snapshot, proxyID string) (*Resources, error) {
	p := snap.Proxy(proxyID)
	if p == nil {
		return ForSidecar(snap, proxyID)
	}
	gen, epoch := c.begin(snap)
	if res, ok := c.assemble(snap, p, gen, epoch); ok {
		return res, nil
	}
	return ForSidecar(snap, proxyID)
}

// assemble is ForSidecar from cached or newly translated pieces; false if
// anything fails (the caller translates again without the cache, for the
// error).
func (c *SidecarCache) assemble(snap *mesh.Snapshot, p *mesh.Proxy, gen, epoch uint64) (*Resources, bool) {
	pub, ok := c.publicFor(snap, p, epoch)
	if !ok {
		return nil, false
	}
	items := make([]versionedItem, 0, len(pub)+4*len(p.Upstreams))
	refs := make(map[*listenerv3.Listener]*references, 1+len(p.Upstreams))
	add := func(ci *cachedItem) {
		items = append(items, ci.versionedItem)
		if ci.refs != nil {
			refs[ci.item.(*listenerv3.Listener)] = ci.refs
		}
	}
	for _, ci := range pub {
		add(ci)
	}
	ids := make(map[string]bool, len(p.Upstreams))
	binds := make(map[string]string, len(p.Upstreams))
	clusters := make(map[string]bool, len(p.Upstreams))
	for _, u := range p.Upstreams {
		id, host, err := checkUpstream(snap, p, u, ids, binds)
		if err != nil {
			return nil, false
		}
		e := c.upstreamFor(snap, p, u, id, host, gen, epoch)
		if e == nil {
			return nil, false
		}
		add(&e.listener)
		if e.routes != nil {
			add(e.routes)
		}
		for i := range e.targets {
			t := &e.targets[i]
			// First upstream wins a shared target, as in upstreamResources.
			if clusters[t.cluster.name] {
				continue
			}
			clusters[t.cluster.name] = true
			add(&t.cluster)
			add(&t.cla)
		}
	}
	res, err := newVersionedResources(items)
	if err != nil {
		return nil, false
	}
	v := &validator{}
	v.consistent(res, func(l *listenerv3.Listener) (references, error) {
		if r := refs[l]; r != nil {
			return *r, nil
		}
		return listenerRefs(l)
	})
	if v.err() != nil {
		return nil, false
	}
	return res, true
}

// publicFor is the proxy's public listener and local_app cluster, from the
// pure cache when another proxy (or an earlier model) had the same
// settings.
func (c *SidecarCache) publicFor(snap *mesh.Snapshot, p *mesh.Proxy, epoch uint64) ([]*cachedItem, bool) {
	s, err := resolvePublic(snap, p)
	if err != nil {
		return nil, false
	}
	lk := pureKey{kind: purePublicListener, host: s.bindHost, port: s.bindPort, proto: s.protocol}
	if s.requestTimeout != nil {
		lk.timeout, lk.hasTimeout = *s.requestTimeout, true
	}
	listener := c.pureItem(lk, epoch, func() (types.Resource, error) {
		return publicListener(s.bindHost, s.bindPort, s.protocol, s.requestTimeout)
	})
	ck := pureKey{kind: pureLocalApp, host: s.localHost, port: s.localPort, proto: s.protocol, timeout: s.connectTimeout}
	cluster := c.pureItem(ck, epoch, func() (types.Resource, error) {
		return localAppCluster(s.localHost, s.localPort, s.protocol, s.connectTimeout)
	})
	if listener == nil || cluster == nil {
		return nil, false
	}
	return []*cachedItem{listener, cluster}, true
}

// pureItem is the resource build returns for k, made once (build must be a
// function of k alone); nil if build fails.
func (c *SidecarCache) pureItem(k pureKey, epoch uint64, build func() (types.Resource, error)) *cachedItem {
	c.mu.Lock()
	e := c.pure[k]
	c.mu.Unlock()
	if e != nil {
		e.lastUsed.Store(epoch)
		c.hits.Add(1)
		return &e.item
	}
	c.misses.Add(1)
	r, err := build()
	if err != nil {
		return nil
	}
	e = &pureEntry{}
	if e.item, _, err = newCachedItem(r, nil); err != nil {
		return nil
	}
	e.lastUsed.Store(epoch)
	c.mu.Lock()
	c.pure[k] = e
	c.mu.Unlock()
	return &e.item
}

func (c *SidecarCache) upstreamFor(snap *mesh.Snapshot, p *mesh.Proxy, u mesh.Upstream, id, host string, gen, epoch uint64) *upstreamEntry {
	key := keyOf(p, u)
	c.mu.Lock()
	e := c.upstreams[key]
	c.mu.Unlock()
	if e != nil && e.gen == gen && e.in.same(snap) {
		e.lastUsed.Store(epoch)
		c.hits.Add(1)
		return e
	}
	c.misses.Add(1)
	e = &upstreamEntry{entryCommon: entryCommon{gen: gen, in: inputsOf(snap, u.DestinationName, p.DestinationService)}}
	var rc *mesh.UpstreamConfig
	if len(u.Config) > 0 {
		cfg, err := registrationUpstreamConfig(u)
		if err != nil {
			return nil
		}
		rc = &cfg
	}
	tr, err := translateUpstream(snap, p, u, id, host, newChainCompiler(snap, false), rc)
	if err != nil {
		return nil
	}
	listener := c.pureItem(pureKey{kind: pureUpstreamListener, upstream: tr.listenerArgs}, epoch,
		func() (types.Resource, error) { return tr.listener, nil })
	if listener == nil {
		return nil
	}
	e.listener = *listener
	var buf []byte
	if tr.routes != nil {
		var ci cachedItem
		if ci, buf, err = newCachedItem(tr.routes, buf); err != nil {
			return nil
		}
		e.routes = &ci
	}
	for _, t := range tr.targets {
		var ct cachedTarget
		if ct.cluster, buf, err = newCachedItem(t.cluster, buf); err != nil {
			return nil
		}
		if ct.cla, buf, err = newCachedItem(t.cla, buf); err != nil {
			return nil
		}
		e.targets = append(e.targets, ct)
	}
	c.store(func() { c.upstreams[key] = e }, &e.entryCommon, epoch)
	return e
}

// store runs put under the lock if e was made under the current
// generation (an entry made from a model whose globals have since been
// replaced must not be kept).
func (c *SidecarCache) store(put func(), ec *entryCommon, epoch uint64) {
	ec.lastUsed.Store(epoch)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ec.gen == c.gen && c.upstreams != nil {
		put()
	}
}

// newCachedItem versions and validates one resource (ValidateAll, and a
// listener's references), as NewResources and Validate would.
func newCachedItem(item types.Resource, buf []byte) (cachedItem, []byte, error) {
	typ, err := typeURLOf(item)
	if err != nil {
		return cachedItem{}, buf, err
	}
	ci := cachedItem{versionedItem: versionedItem{typ: typ, name: cache.GetResourceName(item), item: item}}
	if ci.version, buf, err = itemVersion(item, buf); err != nil {
		return ci, buf, err
	}
	if check, ok := item.(interface{ ValidateAll() error }); ok {
		if err := check.ValidateAll(); err != nil {
			return ci, buf, err
		}
	}
	if l, ok := item.(*listenerv3.Listener); ok {
		r, err := listenerRefs(l)
		if err != nil {
			return ci, buf, err
		}
		ci.refs = &r
	}
	return ci, buf, nil
}
