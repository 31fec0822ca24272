package router

import (
	"cmp"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strings"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Table is a compiled route configuration.
type Table struct {
	cfg      *config.RouteConfig
	exact    map[string]*virtualHost
	suffixes []wildcard // "*.example.com" → ".example.com", longest first
	prefixes []wildcard // "api.*" → "api.", longest first
	any      *virtualHost
	rewrites map[*config.Route]*regexRewrite
}

type wildcard struct {
	part string
	vh   *virtualHost
}

type virtualHost struct {
	cfg    *config.VirtualHost
	routes []route
}

type route struct {
	cfg     *config.Route
	headers []headerMatcher
	queries []queryMatcher
	regex   *regexp.Regexp // anchored copy of Match.Regex
}

type headerMatcher struct {
	cfg    *config.HeaderMatcher
	key    string // canonical MIME key, or a pseudo-header name
	pseudo bool
	match  stringMatcher
}

type regexRewrite struct {
	re   *regexp.Regexp
	repl string // Go template syntax (${1}), converted from Envoy's \1
}

// Compile builds a Table. It never fails: the decoder has validated the
// configuration; a nil RouteConfig gives a Table that matches nothing.
func Compile(rc *config.RouteConfig) *Table {
	t := &Table{cfg: rc, exact: map[string]*virtualHost{}, rewrites: map[*config.Route]*regexRewrite{}}
	if rc == nil {
		return t
	}
	for _, vc := range rc.VirtualHosts {
		vh := &virtualHost{cfg: vc}
		for _, rcfg := range vc.Routes {
			vh.routes = append(vh.routes, compileRoute(rcfg))
			if a := rcfg.Forward; a != nil && a.RegexRewrite != nil && a.RegexRewrite.Pattern != nil {
				t.rewrites[rcfg] = &regexRewrite{re: a.RegexRewrite.Pattern, repl: envoySubstitution(a.RegexRewrite.Substitution)}
			}
		}
		for _, d := range vc.Domains {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if t.any == nil {
					t.any = vh
				}
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{part: d[1:], vh: vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{part: d[:len(d)-1], vh: vh})
			default:
				if _, dup := t.exact[d]; !dup {
					t.exact[d] = vh
				}
			}
		}
	}
	longestFirst := func(a, b wildcard) int { return cmp.Compare(len(b.part), len(a.part)) }
	slices.SortStableFunc(t.suffixes, longestFirst)
	slices.SortStableFunc(t.prefixes, longestFirst)
	return t
}

// Config returns the route configuration the table was compiled from.
func (t *Table) Config() *config.RouteConfig { return t.cfg }

func compileRoute(rc *config.Route) route {
	r := route{cfg: rc}
	if rc.Match.Kind == config.PathRegex && rc.Match.Regex != nil {
		r.regex = anchor(rc.Match.Regex)
	}
	for i := range rc.Match.Headers {
		h := &rc.Match.Headers[i]
		hm := headerMatcher{cfg: h, match: compileString(h.Match)}
		if strings.HasPrefix(h.Name, ":") {
			hm.key, hm.pseudo = strings.ToLower(h.Name), true
		} else {
			hm.key = textproto.CanonicalMIMEHeaderKey(h.Name)
		}
		r.headers = append(r.headers, hm)
	}
	for _, q := range rc.Match.QueryParams {
		r.queries = append(r.queries, queryMatcher{name: q.Name, match: compileString(q.Match)})
	}
	return r
}

// anchor makes re a full match, as Envoy's safe_regex is. Anchoring an
// already anchored expression again is harmless.
func anchor(re *regexp.Regexp) *regexp.Regexp {
	a, err := regexp.Compile(`^(?:` + re.String() + `)$`)
	if err != nil {
		return re
	}
	return a
}

// envoySubstitution turns Envoy's regex_rewrite substitution ("\1" for a
// capture group, everything else literal) into regexp.Expand syntax.
func envoySubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${")
			b.WriteByte(s[i+1])
			b.WriteByte('}')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// VirtualHost returns the virtual host for a Host (or :authority) value, or
// nil when none matches.
func (t *Table) VirtualHost(host string) *config.VirtualHost {
	if vh := t.virtualHost(host); vh != nil {
		return vh.cfg
	}
	return nil
}

func (t *Table) virtualHost(host string) *virtualHost {
	host = lowerASCII(host)
	if vh := t.domainMatch(host); vh != nil {
		return vh
	}
	if h, ok := stripPort(host); ok {
		if vh := t.domainMatch(h); vh != nil {
			return vh
		}
	}
	return t.any
}

func (t *Table) domainMatch(host string) *virtualHost {
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		// The wildcard stands for at least one character.
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return nil
}

// stripPort removes a trailing ":port" (keeping IPv6 brackets).
func stripPort(host string) (string, bool) {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host, false
	}
	if strings.Count(host, ":") > 1 && !strings.HasPrefix(host, "[") {
		return host, false // a bare IPv6 address has no port
	}
	return host[:i], true
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// Route returns the virtual host and the first matching route for r. vh is
// nil when no virtual host matches; rt is nil when no route matches (Envoy
// answers both with 404 and response flag NR).
func (t *Table) Route(r *http.Request) (vh *config.VirtualHost, rt *config.Route) {
	v := t.virtualHost(r.Host)
	if v == nil {
		return nil, nil
	}
	path, query := SplitTarget(r)
	for i := range v.routes {
		if v.routes[i].matches(r, path, query) {
			return v.cfg, v.routes[i].cfg
		}
	}
	return v.cfg, nil
}

// SplitTarget returns the request target's path and raw query as the client
// sent them (Envoy's :path), without allocating.
func SplitTarget(r *http.Request) (path, query string) {
	target := r.RequestURI
	if target == "" || target[0] != '/' {
		// Client-side requests and absolute-form targets.
		return r.URL.EscapedPath(), r.URL.RawQuery
	}
	if i := strings.IndexByte(target, '?'); i >= 0 {
		return target[:i], target[i+1:]
	}
	return target, ""
}
