package router

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// FuzzRouteMatch throws arbitrary hosts, targets and header values at a
// table that uses every match kind: matching, rewriting and redirecting
// must never panic, and a route that matched must really hold for the
// request (checked independently for the exact-path and prefix routes).
func FuzzRouteMatch(f *testing.F) {
	for _, s := range [][3]string{
		{"example.com", "/api/v1?x=1", "abc"},
		{"a.example.com:8080", "/exact", ""},
		{"api.local", "/users/12", "prefix-value"},
		{"[::1]:80", "/?q=%zz&debug", "x"},
		{"", "", ""},
		{"*.example.com", "/%2F..", "\x00"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	prefixRoute := &config.Route{Name: "prefix", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/p/", CaseSensitive: true},
		Forward: &config.RouteAction{PrefixRewrite: "/q/"}}
	exact := &config.Route{Name: "exact", Match: config.RouteMatch{Kind: config.PathExact, Path: "/exact", CaseSensitive: true}}
	tbl := Compile(&config.RouteConfig{VirtualHosts: []*config.VirtualHost{
		{Name: "wild", Domains: []string{"*.example.com", "api.*", "*"}, Routes: []*config.Route{
			exact,
			{Name: "regex", Match: config.RouteMatch{Kind: config.PathRegex, Regex: regexp.MustCompile(`/users/[0-9]+`)},
				Forward: &config.RouteAction{RegexRewrite: &config.RegexRewrite{Pattern: regexp.MustCompile(`[0-9]+`), Substitution: `n\0`}}},
			prefixRoute,
			{Name: "redirect", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/r", CaseSensitive: true},
				Redirect: &config.RedirectAction{HTTPSRedirect: true, PortRedirect: 8443, PrefixRewrite: "/x"}},
			{Name: "headers", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api", Headers: []config.HeaderMatcher{
				{Name: "x-h", Match: config.StringMatcher{Kind: config.MatchContains, Value: "B", IgnoreCase: true}},
				{Name: "x-r", Match: config.StringMatcher{Kind: config.MatchRegex, Regex: regexp.MustCompile(`a.c`)}, Invert: true},
			}}},
			{Name: "query", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/", QueryParams: []config.QueryParamMatcher{
				{Name: "q", Match: config.StringMatcher{Kind: config.MatchSuffix, Value: "z"}},
			}}},
		}},
		{Name: "exact-host", Domains: []string{"example.com", "example.com:8080"}, Routes: []*config.Route{exact}},
	}})
	f.Fuzz(func(t *testing.T, host, target, hv string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		r := &http.Request{Method: "GET", Host: host, RequestURI: target, Header: http.Header{"X-H": {hv}, "X-R": {hv}}}
		vh, rt := tbl.Route(r)
		if vh == nil {
			t.Fatalf("host %q: no virtual host although %q is configured", host, "*")
		}
		path, _, _ := strings.Cut(target, "?")
		switch {
		case rt == nil:
		case rt == exact:
			if path != "/exact" {
				t.Fatalf("exact route matched path %q", path)
			}
		case rt == prefixRoute:
			if !strings.HasPrefix(target, "/p/") {
				t.Fatalf("prefix route matched %q", target)
			}
			if got, _ := tbl.RewritePath(rt, path); !strings.HasPrefix(got, "/q/") {
				t.Fatalf("prefix rewrite of %q gave %q", path, got)
			}
		case rt.Redirect != nil:
			if loc := RedirectLocation(rt, r); !strings.HasPrefix(loc, "https://") {
				t.Fatalf("redirect location %q", loc)
			}
		case rt.Forward != nil:
			tbl.RewritePath(rt, path)
		}
	})
}
