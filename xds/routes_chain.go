package xds

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// chainRoutes turns an HTTP chain into Envoy routes: the router's routes
// in order, then the default route ("/"). Each route forwards to one
// cluster, or to weighted_clusters (total_weight 10000, 0.01 %) when a
// splitter spreads it.
func chainRoutes(cfg *mesh.Config, ch *chain) ([]*routev3.Route, error) {
	ext, err := routeExt(cfg, ch.service)
	if err != nil {
		return nil, err
	}
	ref := mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: ch.service}
	out := make([]*routev3.Route, 0, len(ch.routes))
	for i := range ch.routes {
		cr := &ch.routes[i]
		field := fmt.Sprintf("Routes[%d]", cr.index)
		match, err := routeMatch(cr.match)
		if err != nil {
			return nil, &EntryError{Entry: ref, Field: field + ".Match.HTTP." + err.field, Err: err.err}
		}
		action, err2 := routeAction(cr, ext)
		if err2 != nil {
			return nil, &EntryError{Entry: ref, Field: field + ".Destination", Err: err2}
		}
		r := &routev3.Route{Match: match, Action: &routev3.Route_Route{Route: action}}
		if d := cr.dest; d != nil {
			r.RequestHeadersToAdd, r.RequestHeadersToRemove = headerOptions(d.RequestHeaders)
			r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = headerOptions(d.ResponseHeaders)
		}
		out = append(out, r)
	}
	return out, nil
}

type fieldError struct {
	field string
	err   error
}

func checkRE2(field, re string) *fieldError {
	if _, err := regexp.Compile(re); err != nil {
		return &fieldError{field: field, err: fmt.Errorf("not an RE2 regular expression: %w", err)}
	}
	return nil
}

// routeMatch maps Routes[].Match.HTTP as Consul does: one path criterion
// (prefix "/" when none), headers, query parameters, and Methods as a
// ":method" header regex.
func routeMatch(m *mesh.RouteMatch) (*routev3.RouteMatch, *fieldError) {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return out, nil
	}
	switch {
	case m.PathExact != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.PathExact}
	case m.PathPrefix != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}
	case m.PathRegex != "":
		if err := checkRE2("PathRegex", m.PathRegex); err != nil {
			return nil, err
		}
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.PathRegex}}
	}
	for i, h := range m.Header {
		hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
		var sm *matcherv3.StringMatcher
		switch {
		case h.Exact != "":
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}}
		case h.Prefix != "":
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}}
		case h.Suffix != "":
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: h.Suffix}}
		case h.Regex != "":
			if err := checkRE2(fmt.Sprintf("Header[%d].Regex", i), h.Regex); err != nil {
				return nil, err
			}
			sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: h.Regex}}}
		default:
			// Present, and Consul's default for a header with no criterion.
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		}
		if sm != nil {
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
		}
		out.Headers = append(out.Headers, hm)
	}
	if len(m.Methods) > 0 {
		// Consul: Methods become one regex header match on :method.
		re := strings.Join(m.Methods, "|")
		if err := checkRE2("Methods", re); err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{
			StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}},
		}})
	}
	for i, q := range m.QueryParam {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		switch {
		case q.Exact != "":
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: q.Exact}}}
		case q.Regex != "":
			if err := checkRE2(fmt.Sprintf("QueryParam[%d].Regex", i), q.Regex); err != nil {
				return nil, err
			}
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: q.Regex}}}}
		default:
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		out.QueryParameters = append(out.QueryParameters, qm)
	}
	return out, nil
}

// routeAction is the forwarding part of a route: cluster(s), rewrite,
// timeouts, retries and hash policy.
func routeAction(cr *chainRoute, ext extSet) (*routev3.RouteAction, error) {
	a := &routev3.RouteAction{}
	if len(cr.splits) == 1 {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: cr.splits[0].target.clusterName()}
	} else {
		wc := &routev3.WeightedCluster{TotalWeight: wrapperspb.UInt32(splitScale)}
		for _, s := range cr.splits {
			cw := &routev3.WeightedCluster_ClusterWeight{Name: s.target.clusterName(), Weight: wrapperspb.UInt32(s.weight)}
			if s.split != nil {
				cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOptions(s.split.RequestHeaders)
				cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOptions(s.split.ResponseHeaders)
			}
			wc.Clusters = append(wc.Clusters, cw)
		}
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if t := cr.requestTimeout(); t > 0 {
		a.Timeout = durationpb.New(t)
	}
	if d := cr.dest; d != nil {
		if d.PrefixRewrite != "" {
			a.PrefixRewrite = d.PrefixRewrite
		}
		if d.IdleTimeout > 0 {
			a.IdleTimeout = durationpb.New(d.IdleTimeout)
		}
		rp, err := retryPolicy(d, ext)
		if err != nil {
			return nil, err
		}
		a.RetryPolicy = rp
	}
	// Hash policies are the resolver's; a split whose legs all reach the
	// same resolver (subsets of one service) keeps them, as Consul's
	// splitter node inherits a LoadBalancer all its legs share.
	if r := cr.splits[0].target.resolver; r != nil && !slices.ContainsFunc(cr.splits, func(s chainSplit) bool { return s.target.resolver != r }) {
		a.HashPolicy = hashPolicies(r)
	}
	return a, nil
}

// consulRetryOn are the RetryOn values Consul accepts (Envoy's
// x-envoy-retry-on and x-envoy-retry-grpc-on conditions).
var consulRetryOn = []string{"5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// retryPolicy maps a destination's retry fields as Consul does (NumRetries
// when > 0, else Envoy's default of 1; RetryOn, then connect-failure for
// RetryOnConnectFailure, then retriable-status-codes for
// RetryOnStatusCodes), plus our extension keys. By default a retry goes to
// another host (previous_hosts predicate, 3 selection attempts). Nil
// when the destination asks for no retries.
func retryPolicy(d *mesh.RouteDestination, ext extSet) (*routev3.RetryPolicy, error) {
	if d.NumRetries == 0 && !d.RetryOnConnectFailure && len(d.RetryOn) == 0 && len(d.RetryOnStatusCodes) == 0 {
		return nil, nil
	}
	var on []string
	for _, c := range d.RetryOn {
		if !slices.Contains(consulRetryOn, c) {
			return nil, fmt.Errorf("RetryOn: unknown condition %q (want one of %s)", c, strings.Join(consulRetryOn, ", "))
		}
		if !slices.Contains(on, c) {
			on = append(on, c)
		}
	}
	if d.RetryOnConnectFailure && !slices.Contains(on, "connect-failure") {
		on = append(on, "connect-failure")
	}
	rp := &routev3.RetryPolicy{}
	if len(d.RetryOnStatusCodes) > 0 {
		on = append(on, "retriable-status-codes")
		rp.RetriableStatusCodes = slices.Clone(d.RetryOnStatusCodes)
		for _, code := range d.RetryOnStatusCodes {
			if code < 100 || code > 599 {
				return nil, fmt.Errorf("RetryOnStatusCodes: %d is not an HTTP status", code)
			}
		}
	}
	rp.RetryOn = strings.Join(on, ",")
	if d.NumRetries > 0 {
		rp.NumRetries = wrapperspb.UInt32(d.NumRetries)
	}
	if v, ok := ext.duration(KeyRetryPerTryTimeout); ok {
		rp.PerTryTimeout = durationpb.New(v)
	}
	base, hasBase := ext.duration(KeyRetryBackoffBase)
	maxi, hasMax := ext.duration(KeyRetryBackoffMax)
	if hasBase || hasMax {
		if !hasBase {
			base = defaultRetryBackoffBase
		}
		if hasMax && maxi < base {
			return nil, fmt.Errorf("%s %s is below %s %s", KeyRetryBackoffMax, maxi, KeyRetryBackoffBase, base)
		}
		rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(base)}
		if hasMax {
			rp.RetryBackOff.MaxInterval = durationpb.New(maxi)
		}
	}
	if ext.boolean(KeyRetryPreviousHosts, true) {
		rp.RetryHostPredicate = []*routev3.RetryPolicy_RetryHostPredicate{previousHostsPredicate()}
		attempts, ok := ext.uint(KeyRetryHostSelectionMax)
		if !ok {
			attempts = defaultHostSelectionAttempts
		}
		rp.HostSelectionRetryMaxAttempts = int64(attempts)
	}
	return rp, nil
}

const (
	// defaultRetryBackoffBase is Envoy's retry back-off base interval.
	defaultRetryBackoffBase = 25 * time.Millisecond
	// defaultHostSelectionAttempts: with previous_hosts on, try this many
	// times to pick a host not tried yet (Envoy's default is 1, which with
	// random or least-request picking over two hosts still returns to the
	// failed one a quarter of the time).
	defaultHostSelectionAttempts = 3
)

// hashPolicies maps the resolver's LoadBalancer.HashPolicies (Consul sets
// them only for ring_hash and maglev, the hash-based balancers).
func hashPolicies(r *mesh.ServiceResolver) []*routev3.RouteAction_HashPolicy {
	if r == nil || r.LoadBalancer == nil {
		return nil
	}
	lb := r.LoadBalancer
	if lb.Policy != "ring_hash" && lb.Policy != "maglev" {
		return nil
	}
	var out []*routev3.RouteAction_HashPolicy
	for _, hp := range lb.HashPolicies {
		p := &routev3.RouteAction_HashPolicy{Terminal: hp.Terminal}
		switch {
		case hp.SourceIP:
			p.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
		case hp.Field == "header":
			p.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: hp.FieldValue}}
		case hp.Field == "query_parameter":
			p.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: hp.FieldValue}}
		case hp.Field == "cookie":
			c := &routev3.RouteAction_HashPolicy_Cookie{Name: hp.FieldValue}
			if cc := hp.CookieConfig; cc != nil {
				c.Path = cc.Path
				if cc.Session {
					c.Ttl = durationpb.New(0) // Envoy: a zero TTL makes a session cookie
				} else if cc.TTL > 0 {
					c.Ttl = durationpb.New(cc.TTL)
				}
			}
			p.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// headerOptions maps Consul's header modifiers: Add appends, Set
// overwrites, Remove removes. Sorted by name for stable output.
func headerOptions(h *mesh.HeaderModifiers) ([]*corev3.HeaderValueOption, []string) {
	if h == nil {
		return nil, nil
	}
	var add []*corev3.HeaderValueOption
	for _, k := range slices.Sorted(maps.Keys(h.Add)) {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: h.Add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD})
	}
	for _, k := range slices.Sorted(maps.Keys(h.Set)) {
		add = append(add, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: h.Set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD})
	}
	return add, slices.Clone(h.Remove)
}

// previousHostsPredicate makes a retry avoid the hosts already tried.
func previousHostsPredicate() *routev3.RetryPolicy_RetryHostPredicate {
	// PreviousHostsPredicate{} has no fields that can fail to marshal.
	cfg, _ := toAny(&previoushostsv3.PreviousHostsPredicate{})
	return &routev3.RetryPolicy_RetryHostPredicate{
		Name:       "envoy.retry_host_predicates.previous_hosts",
		ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: cfg},
	}
}
