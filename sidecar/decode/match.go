package decode

import (
	"fmt"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// headerMatcher decodes a HeaderMatcher, including the deprecated direct
// specifiers (exact_match, prefix_match, ...) that older servers still send.
func headerMatcher(h *routev3.HeaderMatcher) (config.HeaderMatcher, error) {
	out := config.HeaderMatcher{Name: strings.ToLower(h.GetName()), Invert: h.GetInvertMatch()}
	if out.Name == "" {
		return out, fmt.Errorf("name is required")
	}
	var err error
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		out.Match, err = stringMatcher(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match: %w", err)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		out.Match = config.StringMatcher{Kind: config.MatchExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.Match = config.StringMatcher{Kind: config.MatchPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.Match = config.StringMatcher{Kind: config.MatchSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.Match = config.StringMatcher{Kind: config.MatchContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch, true)
		if err != nil {
			return out, fmt.Errorf("safe_regex_match: %w", err)
		}
		out.Match = config.StringMatcher{Kind: config.MatchRegex, Regex: re}
	case *routev3.HeaderMatcher_PresentMatch:
		out.Match = config.StringMatcher{Kind: config.MatchPresent}
		// present_match: false means "header absent"; fold it into Invert
		// (config.HeaderMatcher documents this encoding).
		if !s.PresentMatch {
			out.Invert = !out.Invert
		}
	case nil:
		// Envoy: with no specifier the header only has to be present.
		out.Match = config.StringMatcher{Kind: config.MatchPresent}
	default:
		return out, fmt.Errorf("header match specifier %T is not supported", s)
	}
	return out, nil
}

func queryParamMatcher(q *routev3.QueryParameterMatcher) (config.QueryParamMatcher, error) {
	out := config.QueryParamMatcher{Name: q.GetName()}
	if out.Name == "" {
		return out, fmt.Errorf("name is required")
	}
	switch s := q.GetQueryParameterMatchSpecifier().(type) {
	case *routev3.QueryParameterMatcher_StringMatch:
		m, err := stringMatcher(s.StringMatch)
		if err != nil {
			return out, fmt.Errorf("string_match: %w", err)
		}
		out.Match = m
	case *routev3.QueryParameterMatcher_PresentMatch:
		if !s.PresentMatch {
			// There is no Invert on query matchers; Envoy documents only
			// present_match: true as meaningful.
			return out, fmt.Errorf("present_match: false is not supported")
		}
		out.Match = config.StringMatcher{Kind: config.MatchPresent}
	case nil:
		out.Match = config.StringMatcher{Kind: config.MatchPresent}
	default:
		return out, fmt.Errorf("query parameter match specifier %T is not supported", s)
	}
	return out, nil
}

func stringMatcher(m *matcherv3.StringMatcher) (config.StringMatcher, error) {
	out := config.StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = config.MatchExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Value = config.MatchPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Value = config.MatchSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Value = config.MatchContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex, true)
		if err != nil {
			return out, fmt.Errorf("safe_regex: %w", err)
		}
		// Envoy: ignore_case "has no effect for safe_regex".
		out.Kind, out.Regex, out.IgnoreCase = config.MatchRegex, re, false
	default:
		return out, fmt.Errorf("one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return out, nil
}
