package xds

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds/filter"
)

// The discovery chain, composed as Consul's: an upstream service's
// service-router (HTTP protocols only) picks a route; a route's destination
// (or the default route) goes to the destination service's
// service-splitter when it names no subset and the service has one
// (HTTP only), else to its service-resolver; the resolver applies
// Redirect, DefaultSubset, the subset's Filter and Failover and yields a
// target: one EDS cluster. A proxy receives the clusters of every target
// its chains reach, and nothing more.

// splitScale is the resolution of split weights: 0.01 % (Consul's), so
// weighted_clusters have total_weight 10000.
const splitScale = 10000

// chain is one upstream service's compiled discovery chain.
type chain struct {
	service  string
	protocol Protocol
	router   *mesh.ServiceRouter // nil without one (or for tcp)
	// routes, HTTP only: the router's routes in order, then the default
	// route. tcp chains have none and use tcpTarget.
	routes    []chainRoute
	tcpTarget *resolvedTarget
	// targets is every target the chain reaches, sorted by cluster name.
	targets []*resolvedTarget
}

// chainRoute is one route of the chain.
type chainRoute struct {
	index int              // position in the router's Routes; -1 for the default route
	match *mesh.RouteMatch // nil: every request
	dest  *mesh.RouteDestination
	// splits add up to splitScale; one split is a plain cluster route.
	splits []chainSplit
}

// chainSplit is one weighted leg of a route.
type chainSplit struct {
	weight uint32
	target *resolvedTarget
	split  *mesh.Split // the splitter leg it came from (headers), or nil
}

// endpointSelector picks the instances of one target.
type endpointSelector struct {
	target      Target
	filter      *filter.Expr // nil: every instance
	onlyPassing bool
}

// resolvedTarget is one target after its resolver: the cluster's name and
// policy and the endpoints of its load assignment by priority (primary,
// then failover targets in order).
type resolvedTarget struct {
	endpointSelector
	protocol Protocol
	resolver *mesh.ServiceResolver // nil: Consul's default resolver
	failover []endpointSelector
}

func (t *resolvedTarget) clusterName() string { return t.target.ClusterName() }

// chainCompiler compiles the chains of one translation; it shares targets
// between chains so that each cluster is made once.
type chainCompiler struct {
	snap      *mesh.Snapshot
	proxyless bool
	targets   map[string]*resolvedTarget
}

func newChainCompiler(snap *mesh.Snapshot, proxyless bool) *chainCompiler {
	return &chainCompiler{snap: snap, proxyless: proxyless, targets: map[string]*resolvedTarget{}}
}

// compile builds the chain of upstream service in datacenter dc.
func (c *chainCompiler) compile(service, dc string, proto Protocol) (*chain, error) {
	ch := &chain{service: service, protocol: proto}
	reached := map[string]*resolvedTarget{}
	collect := func(splits []chainSplit) {
		for _, s := range splits {
			reached[s.target.clusterName()] = s.target
		}
	}
	// Routers and splitters are L7: Consul refuses them for tcp services.
	// A remote-datacenter upstream is resolved there (Consul's chain for
	// it starts at the remote resolver); we honour the local entries only
	// for the local datacenter.
	l7 := proto.IsHTTP() && dc == c.snap.Datacenter
	if !l7 {
		t, err := c.resolve(service, "", dc, nil, "", proto)
		if err != nil {
			return nil, err
		}
		ch.tcpTarget = t
		reached[t.clusterName()] = t
		// An HTTP upstream in another datacenter still gets its one
		// default route.
		ch.routes = []chainRoute{{index: -1, splits: []chainSplit{{weight: splitScale, target: t}}}}
	} else {
		if r := c.snap.Config.Routers[service]; r != nil {
			ch.router = r
			ref := &mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: service}
			for i := range r.Routes {
				route := &r.Routes[i]
				field := fmt.Sprintf("Routes[%d].Destination", i)
				svc, subset := service, ""
				if d := route.Destination; d != nil {
					svc, subset = orDefault(d.Service, service), d.ServiceSubset
				}
				splits, err := c.node(svc, subset, dc, ref, field, proto, 0)
				if err != nil {
					return nil, err
				}
				collect(splits)
				ch.routes = append(ch.routes, chainRoute{index: i, match: route.Match, dest: route.Destination, splits: splits})
			}
		}
		splits, err := c.node(service, "", dc, nil, "", proto, 0)
		if err != nil {
			return nil, err
		}
		collect(splits)
		ch.routes = append(ch.routes, chainRoute{index: -1, splits: splits})
	}
	for _, t := range reached {
		ch.targets = append(ch.targets, t)
	}
	slices.SortFunc(ch.targets, func(a, b *resolvedTarget) int { return strings.Compare(a.clusterName(), b.clusterName()) })
	return ch, nil
}

// maxChainDepth bounds splitter nesting and redirect hops (a loop between
// entries is an error, not a stack overflow).
const maxChainDepth = 8

// node is where a route (or a split leg) goes: the service's splitter when
// no subset is named and it has one, else its resolver.
func (c *chainCompiler) node(service, subset, dc string, from *mesh.EntryRef, field string, proto Protocol, depth int) ([]chainSplit, error) {
	sp := c.snap.Config.Splitters[service]
	if subset != "" || sp == nil {
		t, err := c.resolve(service, subset, dc, from, field, proto)
		if err != nil {
			return nil, err
		}
		return []chainSplit{{weight: splitScale, target: t}}, nil
	}
	ref := mesh.EntryRef{Kind: mesh.KindServiceSplitter, Name: service}
	if depth >= maxChainDepth {
		return nil, &EntryError{Entry: ref, Field: "Splits", Err: fmt.Errorf("splitters nest deeper than %d (a loop?)", maxChainDepth)}
	}
	// No extension key applies to a splitter; a consulate_ key in its Meta
	// is a mistake to report, not to ignore.
	if _, err := parseExt(mesh.ScopeRoute, extSource{entry: ref, field: "Meta", values: sp.Meta}); err != nil {
		return nil, err
	}
	var sum uint32
	var out []chainSplit
	for i := range sp.Splits {
		s := &sp.Splits[i]
		if !(s.Weight >= 0 && s.Weight <= 100) { // also catches NaN
			return nil, &EntryError{Entry: ref, Field: fmt.Sprintf("Splits[%d].Weight", i), Err: fmt.Errorf("weight %v is not a percentage", s.Weight)}
		}
		w := uint32(s.Weight*100 + 0.5) // 0.01 % units
		sum += w
		if w == 0 {
			continue // Consul drops legs without weight
		}
		legField := fmt.Sprintf("Splits[%d]", i)
		svc := orDefault(s.Service, service)
		var legs []chainSplit
		var err error
		if svc == service {
			// A split to the splitter's own service goes to its resolver.
			var t *resolvedTarget
			t, err = c.resolve(svc, s.ServiceSubset, dc, &ref, legField, proto)
			legs = []chainSplit{{weight: splitScale, target: t}}
		} else {
			legs, err = c.node(svc, s.ServiceSubset, dc, &ref, legField, proto, depth+1)
		}
		if err != nil {
			return nil, err
		}
		for _, leg := range legs {
			leg.weight = uint32((uint64(leg.weight)*uint64(w) + splitScale/2) / splitScale)
			if leg.split == nil {
				leg.split = s
			}
			if leg.weight > 0 {
				out = append(out, leg)
			}
		}
	}
	if sum != splitScale {
		return nil, &EntryError{Entry: ref, Field: "Splits", Err: fmt.Errorf("weights sum to %.2f, want 100", float64(sum)/100)}
	}
	return mergeSplits(out), nil
}

// mergeSplits adds up legs that reach the same cluster with the same
// header changes and corrects rounding so that the weights sum to
// splitScale (nested splitters multiply weights).
func mergeSplits(in []chainSplit) []chainSplit {
	var out []chainSplit
	var sum uint32
	for _, s := range in {
		sum += s.weight
		j := slices.IndexFunc(out, func(o chainSplit) bool { return o.target == s.target && o.split == s.split })
		if j >= 0 {
			out[j].weight += s.weight
			continue
		}
		out = append(out, s)
	}
	if len(out) > 0 && sum != splitScale {
		out[0].weight = out[0].weight + splitScale - sum
	}
	return out
}

// resolve applies service's resolver to (service, subset) in dc.
func (c *chainCompiler) resolve(service, subset, dc string, from *mesh.EntryRef, field string, proto Protocol) (*resolvedTarget, error) {
	service, subset, dc, from, field, err := c.redirect(service, subset, dc, from, field)
	if err != nil {
		return nil, err
	}
	sel, r, err := c.selector(service, subset, dc, from, field)
	if err != nil {
		return nil, err
	}
	name := sel.target.ClusterName()
	tproto, err := serviceProtocol(&c.snap.Config, service)
	if err != nil {
		return nil, err
	}
	if !c.proxyless && tproto != proto {
		ref := mesh.EntryRef{Kind: mesh.KindServiceDefaults, Name: service}
		if from != nil {
			ref = *from
		}
		return nil, &EntryError{Entry: ref, Field: field, Err: fmt.Errorf(
			"target %s speaks %s but the chain it is reached from speaks %s (set the same protocol in both services' service-defaults)",
			name, tproto, proto)}
	}
	if t := c.targets[name]; t != nil {
		return t, nil
	}
	t := &resolvedTarget{endpointSelector: sel, protocol: tproto, resolver: r}
	if r != nil {
		if t.failover, err = c.failover(r, sel); err != nil {
			return nil, err
		}
	}
	c.targets[name] = t
	return t, nil
}

// redirect follows resolver Redirects (Consul: a redirect is applied
// before anything else of the resolver, failover targets included).
func (c *chainCompiler) redirect(service, subset, dc string, from *mesh.EntryRef, field string) (string, string, string, *mesh.EntryRef, string, error) {
	for hop := 0; ; hop++ {
		r := c.snap.Config.Resolvers[service]
		if r == nil || r.Redirect == nil {
			return service, subset, dc, from, field, nil
		}
		ref := mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: service}
		if hop >= maxChainDepth {
			return "", "", "", nil, "", &EntryError{Entry: ref, Field: "Redirect", Err: fmt.Errorf("redirects chain deeper than %d (a loop?)", maxChainDepth)}
		}
		rd := r.Redirect
		next := orDefault(rd.Service, service)
		if next == service && rd.ServiceSubset == subset && (rd.Datacenter == "" || rd.Datacenter == dc) {
			return "", "", "", nil, "", &EntryError{Entry: ref, Field: "Redirect", Err: fmt.Errorf("redirects to itself")}
		}
		service, subset, dc = next, rd.ServiceSubset, orDefault(rd.Datacenter, dc)
		from, field = &ref, "Redirect"
	}
}

// selector applies DefaultSubset and the subset's filter.
func (c *chainCompiler) selector(service, subset, dc string, from *mesh.EntryRef, field string) (endpointSelector, *mesh.ServiceResolver, error) {
	r := c.snap.Config.Resolvers[service]
	ref := mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: service}
	if subset == "" && r != nil {
		subset = r.DefaultSubset
		from, field = &ref, "DefaultSubset"
	}
	sel := endpointSelector{target: Target{Service: service, Subset: subset, Datacenter: dc}}
	if subset == "" {
		return sel, r, nil
	}
	if r == nil {
		return sel, nil, &EntryError{Entry: deref(from, ref), Field: field, Err: fmt.Errorf(
			"subset %q of %s does not exist (%s has no service-resolver)", subset, service, service)}
	}
	s, ok := r.Subsets[subset]
	if !ok {
		return sel, nil, &EntryError{Entry: deref(from, ref), Field: field, Err: fmt.Errorf(
			"subset %q is not defined in %s", subset, ref)}
	}
	expr, err := filter.Parse(s.Filter)
	if err != nil {
		return sel, nil, &EntryError{Entry: ref, Field: fmt.Sprintf("Subsets[%s].Filter", subset), Err: fmt.Errorf("cannot evaluate %q: %w", s.Filter, err)}
	}
	sel.filter, sel.onlyPassing = expr, s.OnlyPassing
	return sel, r, nil
}

func deref(p *mesh.EntryRef, def mesh.EntryRef) mesh.EntryRef {
	if p == nil {
		return def
	}
	return *p
}

// failover lists the failover targets of sel, in order: Failover[subset],
// else Failover["*"]; Targets when set, else one target per Datacenters
// entry, else Service/ServiceSubset. They become the priorities 1, 2, ...
// of the primary's load assignment (Envoy and grpc-go both spill to the
// next priority when one has no healthy endpoint).
func (c *chainCompiler) failover(r *mesh.ServiceResolver, primary endpointSelector) ([]endpointSelector, error) {
	key := primary.target.Subset
	f, ok := r.Failover[key]
	if !ok {
		key = "*"
		if f, ok = r.Failover[key]; !ok {
			return nil, nil
		}
	}
	ref := &mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: r.Name}
	field := fmt.Sprintf("Failover[%s]", key)
	var wanted []Target
	switch {
	case len(f.Targets) > 0:
		for _, t := range f.Targets {
			wanted = append(wanted, Target{Service: orDefault(t.Service, primary.target.Service), Subset: t.ServiceSubset,
				Datacenter: orDefault(t.Datacenter, primary.target.Datacenter)})
		}
	case len(f.Datacenters) > 0:
		for _, dc := range f.Datacenters {
			wanted = append(wanted, Target{Service: orDefault(f.Service, primary.target.Service), Subset: f.ServiceSubset, Datacenter: dc})
		}
	default:
		wanted = append(wanted, Target{Service: orDefault(f.Service, primary.target.Service), Subset: f.ServiceSubset,
			Datacenter: primary.target.Datacenter})
	}
	var out []endpointSelector
	for _, w := range wanted {
		svc, subset, dc, from, ffield, err := c.redirect(w.Service, w.Subset, w.Datacenter, ref, field)
		if err != nil {
			return nil, err
		}
		sel, _, err := c.selector(svc, subset, dc, from, ffield)
		if err != nil {
			return nil, err
		}
		if sel.target == primary.target || slices.ContainsFunc(out, func(o endpointSelector) bool { return o.target == sel.target }) {
			continue
		}
		out = append(out, sel)
	}
	return out, nil
}

// requestTimeout is a route's timeout: the destination's RequestTimeout,
// else the resolver's when the route reaches one target; 0 = unset.
func (r *chainRoute) requestTimeout() time.Duration {
	if r.dest != nil && r.dest.RequestTimeout > 0 {
		return r.dest.RequestTimeout
	}
	if len(r.splits) == 1 {
		if res := r.splits[0].target.resolver; res != nil {
			return res.RequestTimeout
		}
	}
	return 0
}
