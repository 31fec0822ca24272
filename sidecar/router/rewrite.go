package router

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// PickWeighted returns the index of the weighted cluster that n (uniform in
// [0, TotalWeight)) falls on, as Envoy walks weighted_clusters in order.
func PickWeighted(a *config.RouteAction, n uint32) int {
	var acc uint32
	for i := range a.WeightedClusters {
		acc += a.WeightedClusters[i].Weight
		if n < acc {
			return i
		}
	}
	return len(a.WeightedClusters) - 1
}

// TotalWeight is a.TotalWeight, or the sum of the weights when the config
// left it zero.
func TotalWeight(a *config.RouteAction) uint32 {
	if a.TotalWeight != 0 {
		return a.TotalWeight
	}
	var sum uint32
	for _, w := range a.WeightedClusters {
		sum += w.Weight
	}
	return sum
}

// RewritePath returns the upstream path (without query) for a request that
// matched rt: prefix_rewrite replaces the matched prefix (or the whole path
// for an exact path match); regex_rewrite substitutes every match of its
// pattern. The second result is false when the path is unchanged.
func (t *Table) RewritePath(rt *config.Route, path string) (string, bool) {
	a := rt.Forward
	if a == nil {
		return path, false
	}
	if a.PrefixRewrite != "" {
		return prefixRewrite(&rt.Match, path, a.PrefixRewrite)
	}
	if rw := t.rewrites[rt]; rw != nil {
		out := rw.re.ReplaceAllString(path, rw.repl)
		return out, out != path
	}
	return path, false
}

func prefixRewrite(m *config.RouteMatch, path, rewrite string) (string, bool) {
	switch m.Kind {
	case config.PathPrefix:
		if len(m.Path) <= len(path) {
			return rewrite + path[len(m.Path):], true
		}
		return rewrite, true
	case config.PathExact:
		return rewrite, true
	}
	return path, false
}

// RedirectLocation builds the Location header Envoy sends for a redirect
// route, from the original request.
func RedirectLocation(rt *config.Route, r *http.Request) string {
	rd := rt.Redirect
	path, query := SplitTarget(r)
	// Envoy takes the original scheme from x-forwarded-proto.
	origScheme := "http"
	if r.TLS != nil {
		origScheme = "https"
	}
	if xfp := r.Header.Get("X-Forwarded-Proto"); xfp != "" {
		origScheme = strings.ToLower(xfp)
	}
	scheme := origScheme
	switch {
	case rd.HTTPSRedirect:
		scheme = "https"
	case rd.SchemeRedirect != "":
		scheme = strings.ToLower(rd.SchemeRedirect)
	}
	host := r.Host
	if rd.HostRedirect != "" {
		host = rd.HostRedirect
	}
	switch h, _ := stripPort(host); {
	case rd.PortRedirect != 0:
		host = h + ":" + strconv.FormatUint(uint64(rd.PortRedirect), 10)
	case rd.HostRedirect == "" && scheme != origScheme &&
		(origScheme == "http" && strings.HasSuffix(host, ":80") || origScheme == "https" && strings.HasSuffix(host, ":443")):
		// Envoy drops the original scheme's default port when the scheme
		// changes (http://a:80 → https://a, not https://a:80); any other
		// port is kept.
		host = h
	}
	switch {
	case rd.PathRedirect != "":
		if p, q, ok := strings.Cut(rd.PathRedirect, "?"); ok {
			// A query in path_redirect replaces the request's query.
			path, query = p, q
		} else {
			path = rd.PathRedirect
		}
	case rd.PrefixRewrite != "":
		path, _ = prefixRewrite(&rt.Match, path, rd.PrefixRewrite)
	}
	loc := scheme + "://" + host + path
	if query != "" && !rd.StripQuery {
		loc += "?" + query
	}
	return loc
}

// RedirectCode is the redirect's status, 301 when unset.
func RedirectCode(rd *config.RedirectAction) int {
	if rd.ResponseCode == 0 {
		return http.StatusMovedPermanently
	}
	return rd.ResponseCode
}
