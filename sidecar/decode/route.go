package decode

import (
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// RouteConfiguration decodes one RDS resource (or an inline route_config).
func RouteConfiguration(rc *routev3.RouteConfiguration) (*config.RouteConfig, error) {
	out, err := routeConfiguration(rc)
	if err != nil {
		return nil, fmt.Errorf("route_configuration %q: %w", rc.GetName(), err)
	}
	return out, nil
}

func routeConfiguration(rc *routev3.RouteConfiguration) (*config.RouteConfig, error) {
	if err := checkSupported(rc); err != nil {
		return nil, err
	}
	if err := validate(rc); err != nil {
		return nil, err
	}
	out := &config.RouteConfig{Name: rc.GetName()}
	var err error
	if out.RequestHeadersToAdd, err = headersToAdd(rc.GetRequestHeadersToAdd(), "request_headers_to_add"); err != nil {
		return nil, err
	}
	if out.ResponseHeadersToAdd, err = headersToAdd(rc.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	out.RequestHeadersToRemove = lowerAll(rc.GetRequestHeadersToRemove())
	out.ResponseHeadersToRemove = lowerAll(rc.GetResponseHeadersToRemove())
	seen := make(map[string]string) // domain → virtual host
	for i, vh := range rc.GetVirtualHosts() {
		v, err := virtualHost(vh)
		if err != nil {
			return nil, fmt.Errorf("virtual_hosts[%d] %q: %w", i, vh.GetName(), err)
		}
		// Envoy rejects a domain served by two virtual hosts.
		for _, d := range v.Domains {
			if other, dup := seen[d]; dup {
				return nil, fmt.Errorf("virtual_hosts[%d] %q: domain %q is already in virtual host %q", i, vh.GetName(), d, other)
			}
			seen[d] = v.Name
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out, nil
}

func virtualHost(vh *routev3.VirtualHost) (*config.VirtualHost, error) {
	out := &config.VirtualHost{Name: vh.GetName(), PerRequestBufferLimitBytes: vh.GetPerRequestBufferLimitBytes().GetValue(),
		IncludeRequestAttemptCount: vh.GetIncludeRequestAttemptCount(), IncludeAttemptCountInResponse: vh.GetIncludeAttemptCountInResponse()}
	if len(vh.GetDomains()) == 0 {
		return nil, fmt.Errorf("domains: at least one domain is required")
	}
	for i, d := range vh.GetDomains() {
		d = strings.ToLower(d)
		if err := checkDomain(d); err != nil {
			return nil, fmt.Errorf("domains[%d]: %w", i, err)
		}
		out.Domains = append(out.Domains, d)
	}
	var err error
	if vh.GetRetryPolicy() != nil {
		if out.RetryPolicy, err = retryPolicy(vh.GetRetryPolicy()); err != nil {
			return nil, fmt.Errorf("retry_policy: %w", err)
		}
	}
	if out.RequestHeadersToAdd, err = headersToAdd(vh.GetRequestHeadersToAdd(), "request_headers_to_add"); err != nil {
		return nil, err
	}
	if out.ResponseHeadersToAdd, err = headersToAdd(vh.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	out.RequestHeadersToRemove = lowerAll(vh.GetRequestHeadersToRemove())
	out.ResponseHeadersToRemove = lowerAll(vh.GetResponseHeadersToRemove())
	for i, r := range vh.GetRoutes() {
		rt, err := route(r)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]: %w", i, err)
		}
		out.Routes = append(out.Routes, rt)
	}
	return out, nil
}

// checkDomain accepts Envoy's domain forms: "*", "*.suffix"/"*suffix",
// "prefix.*"/"prefix*" and exact names; a wildcard anywhere else is an
// error, as in Envoy.
func checkDomain(d string) error {
	if d == "" {
		return fmt.Errorf("empty domain")
	}
	if d == "*" {
		return nil
	}
	inner := strings.TrimSuffix(strings.TrimPrefix(d, "*"), "*")
	if strings.Contains(inner, "*") || (strings.HasPrefix(d, "*") && strings.HasSuffix(d, "*")) {
		return fmt.Errorf("domain %q: only a leading or trailing wildcard is supported", d)
	}
	return nil
}

func route(r *routev3.Route) (*config.Route, error) {
	out := &config.Route{Name: r.GetName(), PerRequestBufferLimitBytes: r.GetPerRequestBufferLimitBytes().GetValue()}
	m, err := routeMatch(r.GetMatch())
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	out.Match = m
	switch {
	case r.GetRoute() != nil:
		if out.Forward, err = routeAction(r.GetRoute()); err != nil {
			return nil, fmt.Errorf("route: %w", err)
		}
	case r.GetRedirect() != nil:
		if out.Redirect, err = redirectAction(r.GetRedirect()); err != nil {
			return nil, fmt.Errorf("redirect: %w", err)
		}
	case r.GetDirectResponse() != nil:
		if out.DirectResponse, err = directResponse(r.GetDirectResponse()); err != nil {
			return nil, fmt.Errorf("direct_response: %w", err)
		}
	default:
		return nil, fmt.Errorf("one of route, redirect or direct_response is required")
	}
	if out.RequestHeadersToAdd, err = headersToAdd(r.GetRequestHeadersToAdd(), "request_headers_to_add"); err != nil {
		return nil, err
	}
	if out.ResponseHeadersToAdd, err = headersToAdd(r.GetResponseHeadersToAdd(), "response_headers_to_add"); err != nil {
		return nil, err
	}
	out.RequestHeadersToRemove = lowerAll(r.GetRequestHeadersToRemove())
	out.ResponseHeadersToRemove = lowerAll(r.GetResponseHeadersToRemove())
	return out, nil
}

func routeMatch(m *routev3.RouteMatch) (config.RouteMatch, error) {
	out := config.RouteMatch{
		CaseSensitive: boolean(m.GetCaseSensitive(), true),
		GRPC:          m.GetGrpc() != nil,
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Kind, out.Path = config.PathPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		out.Kind, out.Path = config.PathExact, ps.Path
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex, true)
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		out.Kind, out.Regex = config.PathRegex, re
	default:
		return out, fmt.Errorf("one of prefix, path or safe_regex is required")
	}
	for i, h := range m.GetHeaders() {
		hm, err := headerMatcher(h)
		if err != nil {
			return out, fmt.Errorf("headers[%d]: %w", i, err)
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, q := range m.GetQueryParameters() {
		qm, err := queryParamMatcher(q)
		if err != nil {
			return out, fmt.Errorf("query_parameters[%d]: %w", i, err)
		}
		out.QueryParams = append(out.QueryParams, qm)
	}
	return out, nil
}

func lowerAll(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ToLower(s)
	}
	return out
}
