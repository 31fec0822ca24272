package router

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func (rt *route) matches(r *http.Request, path, query string) bool {
	m := &rt.cfg.Match
	switch m.Kind {
	case config.PathPrefix:
		if !prefixMatch(path, query, m.Path, m.CaseSensitive) {
			return false
		}
	case config.PathExact:
		if m.CaseSensitive && path != m.Path || !m.CaseSensitive && !strings.EqualFold(path, m.Path) {
			return false
		}
	case config.PathRegex:
		if rt.regex == nil || !rt.regex.MatchString(path) {
			return false
		}
	}
	if m.GRPC && !isGRPC(r) {
		return false
	}
	for i := range rt.headers {
		if !rt.headers[i].matches(r) {
			return false
		}
	}
	for i := range rt.queries {
		if !rt.queries[i].matches(query) {
			return false
		}
	}
	return true
}

// prefixMatch checks prefix against path + "?" + query without building
// that string: Envoy's prefix match sees the whole :path header.
func prefixMatch(path, query, prefix string, caseSensitive bool) bool {
	eq := func(a, b string) bool {
		if caseSensitive {
			return a == b
		}
		return strings.EqualFold(a, b)
	}
	if len(prefix) <= len(path) {
		return eq(path[:len(prefix)], prefix)
	}
	rest := prefix[len(path):]
	if !eq(path, prefix[:len(path)]) || rest[0] != '?' {
		return false
	}
	rest = rest[1:]
	return len(rest) <= len(query) && eq(query[:len(rest)], rest)
}

func isGRPC(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}

func (h *headerMatcher) matches(r *http.Request) bool {
	v, ok := h.value(r)
	if !ok {
		// Envoy: an absent header matches only "present_match: false"
		// (encoded as MatchPresent inverted).
		return h.cfg.Match.Kind == config.MatchPresent && h.cfg.Invert
	}
	return h.match.matches(v) != h.cfg.Invert
}

func (h *headerMatcher) value(r *http.Request) (string, bool) {
	if h.pseudo {
		switch h.key {
		case ":method":
			return r.Method, true
		case ":authority", ":host":
			return r.Host, true
		case ":path":
			return r.RequestURI, r.RequestURI != ""
		case ":scheme":
			if r.TLS != nil {
				return "https", true
			}
			return "http", true
		}
		return "", false
	}
	vs := r.Header[h.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	// Envoy matches a repeated header against its values joined by ",".
	return strings.Join(vs, ","), true
}

type queryMatcher struct {
	name  string
	match stringMatcher
}

// matches: an absent parameter never matches (Envoy has no invert here).
func (q *queryMatcher) matches(query string) bool {
	v, ok := queryValue(query, q.name)
	return ok && q.match.matches(v)
}

// queryValue finds the first value of name in a raw query string, decoding
// it only if it is escaped.
func queryValue(query, name string) (string, bool) {
	for query != "" {
		var kv string
		kv, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(kv, "=")
		if escaped(k) {
			if dk, err := url.QueryUnescape(k); err == nil {
				k = dk
			}
		}
		if k != name {
			continue
		}
		if escaped(v) {
			if dv, err := url.QueryUnescape(v); err == nil {
				v = dv
			}
		}
		return v, true
	}
	return "", false
}

// escaped reports whether a query component needs decoding.
func escaped(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '%' || c == '+' {
			return true
		}
	}
	return false
}

// stringMatcher is a config.StringMatcher with its comparison value
// prepared.
type stringMatcher struct {
	cfg   config.StringMatcher
	lower string // Value lower-cased, for IgnoreCase contains
}

func compileString(m config.StringMatcher) stringMatcher {
	s := stringMatcher{cfg: m, lower: strings.ToLower(m.Value)}
	if m.Kind == config.MatchRegex && m.Regex != nil {
		s.cfg.Regex = anchor(m.Regex)
	}
	return s
}

func (s *stringMatcher) matches(v string) bool {
	val, fold := s.cfg.Value, s.cfg.IgnoreCase
	switch s.cfg.Kind {
	case config.MatchExact:
		return v == val || fold && strings.EqualFold(v, val)
	case config.MatchPrefix:
		return len(v) >= len(val) && (v[:len(val)] == val || fold && strings.EqualFold(v[:len(val)], val))
	case config.MatchSuffix:
		tail := len(v) - len(val)
		return tail >= 0 && (v[tail:] == val || fold && strings.EqualFold(v[tail:], val))
	case config.MatchContains:
		if fold {
			return strings.Contains(lowerASCII(v), s.lower)
		}
		return strings.Contains(v, val)
	case config.MatchRegex:
		return s.cfg.Regex != nil && s.cfg.Regex.MatchString(v)
	case config.MatchPresent:
		return true
	}
	return false
}

// QueryValue returns the first value of the query parameter name in a raw
// query string (decoded), as the route matcher sees it.
func QueryValue(query, name string) (string, bool) { return queryValue(query, name) }
