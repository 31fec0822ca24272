package router

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func vhosts(domains ...[]string) *config.RouteConfig {
	rc := &config.RouteConfig{Name: "rc"}
	for i, d := range domains {
		rc.VirtualHosts = append(rc.VirtualHosts, &config.VirtualHost{
			Name:    string(rune('a' + i)),
			Domains: d,
			Routes:  []*config.Route{{Name: "all", Match: config.RouteMatch{CaseSensitive: true}}},
		})
	}
	return rc
}

func TestVirtualHostPrecedence(t *testing.T) {
	tbl := Compile(vhosts(
		[]string{"*"},                       // a
		[]string{"*.example.com"},           // b
		[]string{"*.api.example.com"},       // c
		[]string{"api.*"},                   // d
		[]string{"api.example.*"},           // e
		[]string{"www.example.com"},         // f
		[]string{"pinned.example.com:8080"}, // g
		[]string{"*-suffix.org"},            // h
	))
	tests := []struct {
		host string
		want string
	}{
		{"www.example.com", "f"},
		{"WWW.Example.COM", "f"},
		{"www.example.com:9000", "f"},    // port stripped after the full host missed
		{"pinned.example.com:8080", "g"}, // domain with port matches as sent
		{"pinned.example.com", "b"},      // without the port only the wildcard matches
		{"v1.api.example.com", "c"},      // longest suffix wins
		{"x.example.com", "b"},
		{".example.com", "a"},    // the wildcard needs one character
		{"api.example.org", "e"}, // longest prefix
		{"api.other.net", "d"},
		{"api.example.com", "b"}, // suffix beats prefix
		{"api.example.net", "e"}, // longest prefix
		{"a-suffix.org", "h"},
		{"-suffix.org", "a"},
		{"unknown.test", "a"},
		{"[::1]:80", "a"},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			vh := tbl.VirtualHost(tc.host)
			if vh == nil {
				t.Fatalf("no virtual host for %q", tc.host)
			}
			if vh.Name != tc.want {
				t.Errorf("VirtualHost(%q) = %s, want %s", tc.host, vh.Name, tc.want)
			}
		})
	}
}

func TestNoVirtualHost(t *testing.T) {
	tbl := Compile(vhosts([]string{"only.example.com"}))
	r := httptest.NewRequest("GET", "http://other.example.com/", nil)
	vh, rt := tbl.Route(r)
	if vh != nil || rt != nil {
		t.Fatalf("Route = %v, %v; want nil, nil", vh, rt)
	}
}

func req(target string, hdr ...string) *http.Request {
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

func TestRouteMatchKinds(t *testing.T) {
	sm := func(k config.StringMatchKind, v string) config.StringMatcher {
		return config.StringMatcher{Kind: k, Value: v}
	}
	tests := []struct {
		name  string
		match config.RouteMatch
		yes   []*http.Request
		no    []*http.Request
	}{
		{
			name:  "prefix",
			match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api", CaseSensitive: true},
			yes:   []*http.Request{req("/api"), req("/api/v1"), req("/apiary")},
			no:    []*http.Request{req("/API"), req("/ap"), req("/")},
		},
		{
			name:  "prefix spans the query string",
			match: config.RouteMatch{Kind: config.PathPrefix, Path: "/a?x=1", CaseSensitive: true},
			yes:   []*http.Request{req("/a?x=1"), req("/a?x=12")},
			no:    []*http.Request{req("/a"), req("/a?x=2"), req("/ab?x=1")},
		},
		{
			name:  "prefix case insensitive",
			match: config.RouteMatch{Kind: config.PathPrefix, Path: "/Api"},
			yes:   []*http.Request{req("/API/x"), req("/api")},
			no:    []*http.Request{req("/ap")},
		},
		{
			name:  "exact path ignores the query",
			match: config.RouteMatch{Kind: config.PathExact, Path: "/exact", CaseSensitive: true},
			yes:   []*http.Request{req("/exact"), req("/exact?q=1")},
			no:    []*http.Request{req("/exact/"), req("/Exact"), req("/exac")},
		},
		{
			name:  "exact path case insensitive",
			match: config.RouteMatch{Kind: config.PathExact, Path: "/exact"},
			yes:   []*http.Request{req("/EXACT")},
			no:    []*http.Request{req("/exact2")},
		},
		{
			name:  "safe_regex is a full match on the path",
			match: config.RouteMatch{Kind: config.PathRegex, Regex: regexp.MustCompile(`/users/[0-9]+`), CaseSensitive: true},
			yes:   []*http.Request{req("/users/42"), req("/users/42?x=y")},
			no:    []*http.Request{req("/users/42/x"), req("/v1/users/42"), req("/users/")},
		},
		{
			name: "headers",
			match: config.RouteMatch{CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: "x-exact", Match: sm(config.MatchExact, "v")},
				{Name: "x-prefix", Match: sm(config.MatchPrefix, "pre")},
				{Name: "x-suffix", Match: sm(config.MatchSuffix, "fix")},
				{Name: "x-contains", Match: sm(config.MatchContains, "mid")},
				{Name: "x-present", Match: sm(config.MatchPresent, "")},
				{Name: "x-regex", Match: config.StringMatcher{Kind: config.MatchRegex, Regex: regexp.MustCompile(`[a-c]+`)}},
			}},
			yes: []*http.Request{req("/", "x-exact", "v", "x-prefix", "prefer", "x-suffix", "suffix", "x-contains", "amidst", "x-present", "", "x-regex", "abc")},
			no: []*http.Request{
				req("/", "x-exact", "V", "x-prefix", "prefer", "x-suffix", "suffix", "x-contains", "amidst", "x-present", "", "x-regex", "abc"),
				req("/", "x-exact", "v", "x-prefix", "prefer", "x-suffix", "suffix", "x-contains", "amidst", "x-regex", "abc"),
				req("/", "x-exact", "v", "x-prefix", "prefer", "x-suffix", "suffix", "x-contains", "amidst", "x-present", "", "x-regex", "abcd"),
				req("/", "x-exact", "v", "x-prefix", "pr", "x-suffix", "suffix", "x-contains", "amidst", "x-present", "", "x-regex", "abc"),
			},
		},
		{
			name: "inverted header and absent",
			match: config.RouteMatch{CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: "x-env", Match: sm(config.MatchExact, "prod"), Invert: true},
				{Name: "x-debug", Match: sm(config.MatchPresent, ""), Invert: true},
			}},
			yes: []*http.Request{req("/", "x-env", "dev")},
			// An absent header never matches a value matcher, inverted or not (Envoy).
			no: []*http.Request{req("/", "x-env", "prod"), req("/"), req("/", "x-env", "dev", "x-debug", "1")},
		},
		{
			name: "repeated header values are joined with a comma",
			match: config.RouteMatch{CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: "x-multi", Match: sm(config.MatchExact, "a,b")},
			}},
			yes: []*http.Request{req("/", "x-multi", "a", "x-multi", "b")},
			no:  []*http.Request{req("/", "x-multi", "a")},
		},
		{
			name: "ignore case string match",
			match: config.RouteMatch{CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: "x-c", Match: config.StringMatcher{Kind: config.MatchContains, Value: "MiD", IgnoreCase: true}},
			}},
			yes: []*http.Request{req("/", "x-c", "aMIDb")},
			no:  []*http.Request{req("/", "x-c", "amdb")},
		},
		{
			name: "pseudo header method",
			match: config.RouteMatch{CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: ":method", Match: sm(config.MatchExact, "GET")},
			}},
			yes: []*http.Request{req("/")},
			no:  []*http.Request{httptest.NewRequest("POST", "/", nil)},
		},
		{
			name: "query parameters",
			match: config.RouteMatch{CaseSensitive: true, QueryParams: []config.QueryParamMatcher{
				{Name: "debug", Match: sm(config.MatchPresent, "")},
				{Name: "user name", Match: sm(config.MatchPrefix, "ad")},
			}},
			yes: []*http.Request{req("/?debug&user+name=admin"), req("/x?user%20name=adam&debug=0")},
			no:  []*http.Request{req("/?debug"), req("/?user+name=admin"), req("/?debug&user+name=bob")},
		},
		{
			name:  "grpc",
			match: config.RouteMatch{CaseSensitive: true, GRPC: true},
			yes:   []*http.Request{req("/svc/M", "content-type", "application/grpc"), req("/", "content-type", "application/grpc+proto")},
			no:    []*http.Request{req("/"), req("/", "content-type", "application/json")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := &config.Route{Name: "target", Match: tc.match}
			tbl := Compile(&config.RouteConfig{VirtualHosts: []*config.VirtualHost{{
				Name: "vh", Domains: []string{"*"}, Routes: []*config.Route{want},
			}}})
			for _, r := range tc.yes {
				if _, got := tbl.Route(r); got != want {
					t.Errorf("%s %s %v: no match, want match", r.Method, r.RequestURI, r.Header)
				}
			}
			for _, r := range tc.no {
				if _, got := tbl.Route(r); got != nil {
					t.Errorf("%s %s %v: matched, want no match", r.Method, r.RequestURI, r.Header)
				}
			}
		})
	}
}

func TestRoutesInOrder(t *testing.T) {
	first := &config.Route{Name: "first", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/a", CaseSensitive: true}}
	second := &config.Route{Name: "second", Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true}}
	tbl := Compile(&config.RouteConfig{VirtualHosts: []*config.VirtualHost{{Domains: []string{"*"}, Routes: []*config.Route{first, second}}}})
	for target, want := range map[string]*config.Route{"/a/b": first, "/b": second, "/": second} {
		if _, got := tbl.Route(req(target)); got != want {
			t.Errorf("%s: got %v, want %s", target, got, want.Name)
		}
	}
}

func TestRewritePath(t *testing.T) {
	tests := []struct {
		name  string
		route *config.Route
		path  string
		want  string
	}{
		{
			name:  "prefix rewrite",
			route: &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api/"}, Forward: &config.RouteAction{PrefixRewrite: "/v2/"}},
			path:  "/api/users", want: "/v2/users",
		},
		{
			name:  "prefix rewrite to root",
			route: &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api"}, Forward: &config.RouteAction{PrefixRewrite: "/"}},
			path:  "/api", want: "/",
		},
		{
			name:  "exact path rewrite",
			route: &config.Route{Match: config.RouteMatch{Kind: config.PathExact, Path: "/old"}, Forward: &config.RouteAction{PrefixRewrite: "/new"}},
			path:  "/old", want: "/new",
		},
		{
			name: "regex rewrite with capture group",
			route: &config.Route{Forward: &config.RouteAction{RegexRewrite: &config.RegexRewrite{
				Pattern: regexp.MustCompile(`^/service/([^/]+)(/.*)$`), Substitution: `\2/instance/\1$`,
			}}},
			path: "/service/foo/v1/api", want: "/v1/api/instance/foo$",
		},
		{
			name:  "no rewrite",
			route: &config.Route{Forward: &config.RouteAction{Cluster: "c"}},
			path:  "/same", want: "/same",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tbl := Compile(&config.RouteConfig{VirtualHosts: []*config.VirtualHost{{Domains: []string{"*"}, Routes: []*config.Route{tc.route}}}})
			got, _ := tbl.RewritePath(tc.route, tc.path)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("RewritePath(%q) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}

func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name     string
		match    config.RouteMatch
		redirect config.RedirectAction
		target   string
		want     string
		code     int
	}{
		{name: "https keeps path, query and a non-default port", redirect: config.RedirectAction{HTTPSRedirect: true},
			target: "http://example.com:8080/a?b=c", want: "https://example.com:8080/a?b=c", code: 301},
		{name: "https drops http's default port", redirect: config.RedirectAction{HTTPSRedirect: true},
			target: "http://example.com:80/a", want: "https://example.com/a", code: 301},
		{name: "scheme redirect", redirect: config.RedirectAction{SchemeRedirect: "https"},
			target: "http://example.com/a", want: "https://example.com/a", code: 301},
		{name: "host and port", redirect: config.RedirectAction{HostRedirect: "new.example.com", PortRedirect: 9443, ResponseCode: 307},
			target: "http://example.com:8080/a", want: "http://new.example.com:9443/a", code: 307},
		{name: "path redirect strips query", redirect: config.RedirectAction{PathRedirect: "/new", StripQuery: true, ResponseCode: 302},
			target: "http://example.com/old?x=1", want: "http://example.com/new", code: 302},
		{name: "path redirect with its own query", redirect: config.RedirectAction{PathRedirect: "/new?y=2"},
			target: "http://example.com/old?x=1", want: "http://example.com/new?y=2", code: 301},
		{name: "prefix rewrite", match: config.RouteMatch{Kind: config.PathPrefix, Path: "/v1/"}, redirect: config.RedirectAction{PrefixRewrite: "/v2/"},
			target: "http://example.com/v1/items", want: "http://example.com/v2/items", code: 301},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rd := tc.redirect
			rt := &config.Route{Match: tc.match, Redirect: &rd}
			got := RedirectLocation(rt, httptest.NewRequest("GET", tc.target, nil))
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Location (-want +got):\n%s", diff)
			}
			if c := RedirectCode(&rd); c != tc.code {
				t.Errorf("code = %d, want %d", c, tc.code)
			}
		})
	}
}

func TestPickWeighted(t *testing.T) {
	a := &config.RouteAction{WeightedClusters: []config.WeightedCluster{{Name: "a", Weight: 10}, {Name: "b", Weight: 0}, {Name: "c", Weight: 90}}}
	if got := TotalWeight(a); got != 100 {
		t.Fatalf("TotalWeight = %d", got)
	}
	counts := map[string]int{}
	for n := range uint32(100) {
		counts[a.WeightedClusters[PickWeighted(a, n)].Name]++
	}
	if diff := cmp.Diff(map[string]int{"a": 10, "c": 90}, counts); diff != "" {
		t.Errorf("picks (-want +got):\n%s", diff)
	}
}
