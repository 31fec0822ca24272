package discovery

import (
	"fmt"
	"math"
	"regexp"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// checkRegex compiles a regex the way Envoy will use it: Envoy's safe_regex
// is RE2, and Go's regexp implements RE2 syntax. Consul 1.14 stores any
// string here, so a pattern such as a look-ahead is only caught by us.
func checkRegex(ee *entryErrors, field, re string) {
	if re == "" {
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		ee.add(field, fmt.Errorf("not an RE2 regular expression: %w", err))
	}
}

func decodeRouter(e *api.ServiceRouterConfigEntry, ee *entryErrors) *mesh.ServiceRouter {
	r := &mesh.ServiceRouter{Name: e.Name, Meta: nilIfEmptyMap(e.Meta)}
	if len(e.Routes) > 0 {
		r.Routes = make([]mesh.Route, len(e.Routes))
	}
	for i, route := range e.Routes {
		field := fmt.Sprintf("Routes[%d]", i)
		if route.Match != nil && route.Match.HTTP != nil {
			r.Routes[i].Match = decodeRouteMatch(route.Match.HTTP, field+".Match.HTTP", ee)
		}
		if d := route.Destination; d != nil {
			r.Routes[i].Destination = &mesh.RouteDestination{
				Service:               d.Service,
				ServiceSubset:         d.ServiceSubset,
				PrefixRewrite:         d.PrefixRewrite,
				RequestTimeout:        d.RequestTimeout,
				IdleTimeout:           d.IdleTimeout,
				NumRetries:            d.NumRetries,
				RetryOnConnectFailure: d.RetryOnConnectFailure,
				RetryOn:               nilIfEmpty(d.RetryOn),
				RetryOnStatusCodes:    nilIfEmptyUint32(d.RetryOnStatusCodes),
				RequestHeaders:        decodeHeaderModifiers(d.RequestHeaders),
				ResponseHeaders:       decodeHeaderModifiers(d.ResponseHeaders),
			}
			if d.RequestTimeout < 0 {
				ee.add(field+".Destination.RequestTimeout", fmt.Errorf("negative duration %s", d.RequestTimeout))
			}
			if d.IdleTimeout < 0 {
				ee.add(field+".Destination.IdleTimeout", fmt.Errorf("negative duration %s", d.IdleTimeout))
			}
		}
	}
	return r
}

func decodeRouteMatch(h *api.ServiceRouteHTTPMatch, field string, ee *entryErrors) *mesh.RouteMatch {
	m := &mesh.RouteMatch{
		PathExact:  h.PathExact,
		PathPrefix: h.PathPrefix,
		PathRegex:  h.PathRegex,
		Methods:    nilIfEmpty(h.Methods),
	}
	checkRegex(ee, field+".PathRegex", h.PathRegex)
	if h.CaseInsensitive {
		// Not in Consul 1.14 and not in the model: refuse rather than
		// silently match case-sensitively.
		ee.add(field+".CaseInsensitive", fmt.Errorf("case-insensitive matching is not supported"))
	}
	for i, hm := range h.Header {
		m.Header = append(m.Header, mesh.HeaderMatch{
			Name: hm.Name, Present: hm.Present, Exact: hm.Exact, Prefix: hm.Prefix,
			Suffix: hm.Suffix, Regex: hm.Regex, Invert: hm.Invert,
		})
		checkRegex(ee, fmt.Sprintf("%s.Header[%d].Regex", field, i), hm.Regex)
	}
	for i, qm := range h.QueryParam {
		m.QueryParam = append(m.QueryParam, mesh.QueryMatch{
			Name: qm.Name, Present: qm.Present, Exact: qm.Exact, Regex: qm.Regex,
		})
		checkRegex(ee, fmt.Sprintf("%s.QueryParam[%d].Regex", field, i), qm.Regex)
	}
	return m
}

func decodeHeaderModifiers(h *api.HTTPHeaderModifiers) *mesh.HeaderModifiers {
	if h == nil || (len(h.Add) == 0 && len(h.Set) == 0 && len(h.Remove) == 0) {
		return nil
	}
	return &mesh.HeaderModifiers{
		Add:    nilIfEmptyMap(h.Add),
		Set:    nilIfEmptyMap(h.Set),
		Remove: nilIfEmpty(h.Remove),
	}
}

// splitWeightScale is Consul's split weight resolution: 0.01 %.
const splitWeightScale = 100

func decodeSplitter(e *api.ServiceSplitterConfigEntry, ee *entryErrors) *mesh.ServiceSplitter {
	s := &mesh.ServiceSplitter{Name: e.Name, Meta: nilIfEmptyMap(e.Meta)}
	var sum int64
	for i, sp := range e.Splits {
		scaled := int64(math.Round(float64(sp.Weight) * splitWeightScale))
		if scaled < 0 {
			ee.add(fmt.Sprintf("Splits[%d].Weight", i), fmt.Errorf("negative weight %v", sp.Weight))
		}
		sum += scaled
		s.Splits = append(s.Splits, mesh.Split{
			Weight:          float32(scaled) / splitWeightScale,
			Service:         sp.Service,
			ServiceSubset:   sp.ServiceSubset,
			RequestHeaders:  decodeHeaderModifiers(sp.RequestHeaders),
			ResponseHeaders: decodeHeaderModifiers(sp.ResponseHeaders),
		})
	}
	// Consul: "the sum of weights across all splits must add up to 100".
	if sum != 100*splitWeightScale {
		ee.add("Splits", fmt.Errorf("weights sum to %.2f, want 100", float64(sum)/splitWeightScale))
	}
	return s
}

var lbPolicies = []string{"", "round_robin", "least_request", "random", "ring_hash", "maglev"}

func decodeResolver(e *api.ServiceResolverConfigEntry, ee *entryErrors) *mesh.ServiceResolver {
	r := &mesh.ServiceResolver{
		Name:           e.Name,
		DefaultSubset:  e.DefaultSubset,
		ConnectTimeout: e.ConnectTimeout,
		RequestTimeout: e.RequestTimeout,
		Meta:           nilIfEmptyMap(e.Meta),
	}
	if e.ConnectTimeout < 0 {
		ee.add("ConnectTimeout", fmt.Errorf("negative duration %s", e.ConnectTimeout))
	}
	if e.RequestTimeout < 0 {
		ee.add("RequestTimeout", fmt.Errorf("negative duration %s", e.RequestTimeout))
	}
	if len(e.Subsets) > 0 {
		r.Subsets = make(map[string]mesh.ResolverSubset, len(e.Subsets))
		for name, s := range e.Subsets {
			r.Subsets[name] = mesh.ResolverSubset{Filter: s.Filter, OnlyPassing: s.OnlyPassing}
		}
	}
	if e.DefaultSubset != "" {
		if _, ok := e.Subsets[e.DefaultSubset]; !ok {
			ee.add("DefaultSubset", fmt.Errorf("subset %q is not defined", e.DefaultSubset))
		}
	}
	if rd := e.Redirect; rd != nil {
		r.Redirect = &mesh.ResolverRedirect{Service: rd.Service, ServiceSubset: rd.ServiceSubset, Datacenter: rd.Datacenter}
		if rd.Peer != "" || rd.SamenessGroup != "" {
			ee.add("Redirect", fmt.Errorf("redirect to a peer or sameness group is not supported"))
		}
	}
	if len(e.Failover) > 0 {
		r.Failover = make(map[string]mesh.ResolverFailover, len(e.Failover))
		for key, f := range e.Failover {
			out := mesh.ResolverFailover{
				Service:       f.Service,
				ServiceSubset: f.ServiceSubset,
				Datacenters:   nilIfEmpty(f.Datacenters),
			}
			for _, t := range f.Targets {
				out.Targets = append(out.Targets, mesh.FailoverTarget{
					Service: t.Service, ServiceSubset: t.ServiceSubset, Datacenter: t.Datacenter,
				})
			}
			r.Failover[key] = out
		}
	}
	if lb := e.LoadBalancer; lb != nil {
		r.LoadBalancer = decodeLoadBalancer(lb, ee)
	}
	return r
}

func decodeLoadBalancer(lb *api.LoadBalancer, ee *entryErrors) *mesh.LoadBalancer {
	out := &mesh.LoadBalancer{Policy: lb.Policy}
	if !slices.Contains(lbPolicies, lb.Policy) {
		ee.add("LoadBalancer.Policy", fmt.Errorf("unknown policy %q", lb.Policy))
	}
	if c := lb.LeastRequestConfig; c != nil {
		out.LeastRequestConfig = &mesh.LeastRequestConfig{ChoiceCount: c.ChoiceCount}
	}
	if c := lb.RingHashConfig; c != nil {
		out.RingHashConfig = &mesh.RingHashConfig{MinimumRingSize: c.MinimumRingSize, MaximumRingSize: c.MaximumRingSize}
	}
	for i, hp := range lb.HashPolicies {
		p := mesh.HashPolicy{Field: hp.Field, FieldValue: hp.FieldValue, SourceIP: hp.SourceIP, Terminal: hp.Terminal}
		if c := hp.CookieConfig; c != nil {
			p.CookieConfig = &mesh.CookieConfig{Session: c.Session, TTL: c.TTL, Path: c.Path}
		}
		switch hp.Field {
		case "", "header", "cookie", "query_parameter":
		default:
			ee.add(fmt.Sprintf("LoadBalancer.HashPolicies[%d].Field", i), fmt.Errorf("unknown field %q", hp.Field))
		}
		out.HashPolicies = append(out.HashPolicies, p)
	}
	return out
}

func nilIfEmptyUint32(s []uint32) []uint32 {
	if len(s) == 0 {
		return nil
	}
	return s
}
