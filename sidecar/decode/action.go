package decode

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Envoy defaults for route actions and retry policies.
const (
	defaultRouteTimeout          = 15 * time.Second      // RouteAction.timeout
	defaultNumRetries            = 1                     // RetryPolicy.num_retries
	defaultBackOffBase           = 25 * time.Millisecond // RetryBackOff.base_interval
	defaultHostSelectionAttempts = 1                     // host_selection_retry_max_attempts
	previousHostsName            = "envoy.retry_host_predicates.previous_hosts"
)

func routeAction(a *routev3.RouteAction) (*config.RouteAction, error) {
	out := &config.RouteAction{
		Timeout:            duration(a.GetTimeout(), defaultRouteTimeout),
		IdleTimeout:        duration(a.GetIdleTimeout(), 0),
		PrefixRewrite:      a.GetPrefixRewrite(),
		HostRewriteLiteral: a.GetHostRewriteLiteral(),
		AutoHostRewrite:    boolean(a.GetAutoHostRewrite(), false),
	}
	switch cs := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return nil, fmt.Errorf("cluster: empty name")
		}
		out.Cluster = cs.Cluster
	case *routev3.RouteAction_WeightedClusters:
		if err := weightedClusters(cs.WeightedClusters, out); err != nil {
			return nil, fmt.Errorf("weighted_clusters: %w", err)
		}
	default:
		return nil, fmt.Errorf("one of cluster or weighted_clusters is required")
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		if out.PrefixRewrite != "" {
			return nil, fmt.Errorf("regex_rewrite: cannot be combined with prefix_rewrite")
		}
		re, err := compileRegex(rr.GetPattern(), false)
		if err != nil {
			return nil, fmt.Errorf("regex_rewrite.pattern: %w", err)
		}
		// Substitution stays in Envoy's syntax ("\1"); the router
		// translates it.
		out.RegexRewrite = &config.RegexRewrite{Pattern: re, Substitution: rr.GetSubstitution()}
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		p, err := retryPolicy(rp)
		if err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
		out.RetryPolicy = p
	}
	for i, hp := range a.GetHashPolicy() {
		h, err := hashPolicy(hp)
		if err != nil {
			return nil, fmt.Errorf("hash_policy[%d]: %w", i, err)
		}
		out.HashPolicies = append(out.HashPolicies, h)
	}
	return out, nil
}

func weightedClusters(wc *routev3.WeightedCluster, out *config.RouteAction) error {
	var sum uint64
	for i, c := range wc.GetClusters() {
		if c.GetName() == "" {
			return fmt.Errorf("clusters[%d].name is required", i)
		}
		w := config.WeightedCluster{
			Name:                    c.GetName(),
			Weight:                  u32(c.GetWeight(), 0),
			RequestHeadersToRemove:  lowerAll(c.GetRequestHeadersToRemove()),
			ResponseHeadersToRemove: lowerAll(c.GetResponseHeadersToRemove()),
		}
		var err error
		if w.RequestHeadersToAdd, err = headersToAdd(c.GetRequestHeadersToAdd(), fmt.Sprintf("clusters[%d].request_headers_to_add", i)); err != nil {
			return err
		}
		if w.ResponseHeadersToAdd, err = headersToAdd(c.GetResponseHeadersToAdd(), fmt.Sprintf("clusters[%d].response_headers_to_add", i)); err != nil {
			return err
		}
		sum += uint64(w.Weight)
		out.WeightedClusters = append(out.WeightedClusters, w)
	}
	if len(out.WeightedClusters) == 0 {
		return fmt.Errorf("clusters: at least one cluster is required")
	}
	// Envoy: the weights must add up to total_weight when it is set, and
	// must not all be zero.
	if sum == 0 || sum > 1<<32-1 {
		return fmt.Errorf("clusters: sum of weights %d is not in 1..%d", sum, uint32(1<<32-1))
	}
	if tw := wc.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != sum {
		return fmt.Errorf("total_weight %d does not match the sum of weights %d", tw.GetValue(), sum)
	}
	out.TotalWeight = uint32(sum)
	return nil
}

// retryOnNames maps Envoy's retry_on condition names to bits
// (router docs "x-envoy-retry-on" and "x-envoy-retry-grpc-on").
var retryOnNames = map[string]config.RetryOn{
	"5xx":                    config.Retry5xx,
	"gateway-error":          config.RetryGatewayError,
	"reset":                  config.RetryReset,
	"connect-failure":        config.RetryConnectFailure,
	"retriable-4xx":          config.RetryRetriable4xx,
	"refused-stream":         config.RetryRefusedStream,
	"retriable-status-codes": config.RetryRetriableStatusCodes,
	"retriable-headers":      config.RetryRetriableHeaders,
	"cancelled":              config.RetryGRPCCancelled,
	"deadline-exceeded":      config.RetryGRPCDeadlineExceeded,
	"internal":               config.RetryGRPCInternal,
	"resource-exhausted":     config.RetryGRPCResourceExhausted,
	"unavailable":            config.RetryGRPCUnavailable,
}

func parseRetryOn(s string) (config.RetryOn, error) {
	var on config.RetryOn
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		bit, ok := retryOnNames[part]
		if !ok {
			return 0, fmt.Errorf("retry_on: condition %q is not supported", part)
		}
		on |= bit
	}
	return on, nil
}

func retryPolicy(p *routev3.RetryPolicy) (*config.RetryPolicy, error) {
	on, err := parseRetryOn(p.GetRetryOn())
	if err != nil {
		return nil, err
	}
	out := &config.RetryPolicy{
		RetryOn:               on,
		NumRetries:            u32(p.GetNumRetries(), defaultNumRetries),
		PerTryTimeout:         duration(p.GetPerTryTimeout(), 0),
		PerTryIdleTimeout:     duration(p.GetPerTryIdleTimeout(), 0),
		BackOffBase:           defaultBackOffBase,
		BackOffMax:            10 * defaultBackOffBase,
		HostSelectionAttempts: defaultHostSelectionAttempts,
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n != 0 {
		out.HostSelectionAttempts = n
	}
	if codes := p.GetRetriableStatusCodes(); len(codes) > 0 {
		out.RetriableStatusCodes = append([]uint32(nil), codes...)
	}
	if bo := p.GetRetryBackOff(); bo != nil {
		base := duration(bo.GetBaseInterval(), 0)
		if base <= 0 {
			return nil, fmt.Errorf("retry_back_off.base_interval must be > 0")
		}
		// Envoy: max_interval defaults to 10 × base_interval and must not
		// be below it.
		max := duration(bo.GetMaxInterval(), 10*base)
		if max < base {
			return nil, fmt.Errorf("retry_back_off.max_interval %s is below base_interval %s", max, base)
		}
		out.BackOffBase, out.BackOffMax = base, max
	}
	for i, hp := range p.GetRetryHostPredicate() {
		tc := hp.GetTypedConfig()
		switch {
		case tc != nil && tc.MessageIs((*previoushostsv3.PreviousHostsPredicate)(nil)):
		case tc == nil && hp.GetName() == previousHostsName:
		default:
			return nil, fmt.Errorf("retry_host_predicate[%d]: predicate %q is not supported (only previous_hosts)", i, hp.GetName())
		}
		out.RetryPreviousHosts = true
	}
	if err := retryPolicyExtras(p, out); err != nil {
		return nil, err
	}
	return out, nil
}

func hashPolicy(h *routev3.RouteAction_HashPolicy) (config.HashPolicy, error) {
	out := config.HashPolicy{Terminal: h.GetTerminal()}
	switch p := h.GetPolicySpecifier().(type) {
	case *routev3.RouteAction_HashPolicy_Header_:
		out.Header = strings.ToLower(p.Header.GetHeaderName())
		if out.Header == "" {
			return out, fmt.Errorf("header.header_name is required")
		}
	case *routev3.RouteAction_HashPolicy_Cookie_:
		out.Cookie = p.Cookie.GetName()
		out.CookieTTL = duration(p.Cookie.GetTtl(), 0)
		out.CookiePath = p.Cookie.GetPath()
		if out.Cookie == "" {
			return out, fmt.Errorf("cookie.name is required")
		}
	case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
		out.SourceIP = p.ConnectionProperties.GetSourceIp()
	case *routev3.RouteAction_HashPolicy_QueryParameter_:
		out.QueryParam = p.QueryParameter.GetName()
		if out.QueryParam == "" {
			return out, fmt.Errorf("query_parameter.name is required")
		}
	default:
		return out, fmt.Errorf("one of header, cookie, connection_properties or query_parameter is required")
	}
	return out, nil
}

var redirectCodes = map[routev3.RedirectAction_RedirectResponseCode]int{
	routev3.RedirectAction_MOVED_PERMANENTLY:  301,
	routev3.RedirectAction_FOUND:              302,
	routev3.RedirectAction_SEE_OTHER:          303,
	routev3.RedirectAction_TEMPORARY_REDIRECT: 307,
	routev3.RedirectAction_PERMANENT_REDIRECT: 308,
}

func redirectAction(r *routev3.RedirectAction) (*config.RedirectAction, error) {
	code, ok := redirectCodes[r.GetResponseCode()]
	if !ok {
		return nil, fmt.Errorf("response_code: %s is not supported", r.GetResponseCode())
	}
	return &config.RedirectAction{
		SchemeRedirect: r.GetSchemeRedirect(),
		HTTPSRedirect:  r.GetHttpsRedirect(),
		HostRedirect:   r.GetHostRedirect(),
		PortRedirect:   r.GetPortRedirect(),
		PathRedirect:   r.GetPathRedirect(),
		PrefixRewrite:  r.GetPrefixRewrite(),
		StripQuery:     r.GetStripQuery(),
		ResponseCode:   code,
	}, nil
}

// maxDirectResponseBody is Envoy's default
// RouteConfiguration.max_direct_response_body_size_bytes.
const maxDirectResponseBody = 4096

func directResponse(d *routev3.DirectResponseAction) (*config.DirectResponseAction, error) {
	out := &config.DirectResponseAction{Status: int(d.GetStatus())}
	if b := d.GetBody(); b != nil {
		if s := b.GetInlineString(); s != "" {
			out.Body = []byte(s)
		} else if raw := b.GetInlineBytes(); len(raw) > 0 {
			out.Body = append([]byte(nil), raw...)
		}
	}
	if len(out.Body) > maxDirectResponseBody {
		return nil, fmt.Errorf("body: %d bytes exceed the %d-byte limit", len(out.Body), maxDirectResponseBody)
	}
	return out, nil
}
