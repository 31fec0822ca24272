package router

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// BenchmarkRoute matches a request against a route configuration shaped
// like a mesh upstream's: a few virtual hosts, ten routes, the match on the
// last route with a header and a query parameter.
func BenchmarkRoute(b *testing.B) {
	rc := &config.RouteConfig{}
	for i := range 5 {
		vh := &config.VirtualHost{Name: fmt.Sprint("vh", i), Domains: []string{fmt.Sprintf("svc%d.example.com", i), fmt.Sprintf("*.svc%d.internal", i)}}
		for j := range 9 {
			vh.Routes = append(vh.Routes, &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: fmt.Sprintf("/api/v%d/", j), CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "c"}})
		}
		vh.Routes = append(vh.Routes, &config.Route{Name: "last", Match: config.RouteMatch{
			Kind: config.PathRegex, Regex: regexp.MustCompile(`/users/[0-9]+`), CaseSensitive: true,
			Headers:     []config.HeaderMatcher{{Name: "x-tenant", Match: config.StringMatcher{Kind: config.MatchPrefix, Value: "acme"}}},
			QueryParams: []config.QueryParamMatcher{{Name: "view", Match: config.StringMatcher{Kind: config.MatchExact, Value: "full"}}},
		}, Forward: &config.RouteAction{Cluster: "c"}})
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	tbl := Compile(rc)
	r := &http.Request{Method: "GET", Host: "a.svc3.internal:8080", RequestURI: "/users/1234?view=full", Header: http.Header{"X-Tenant": {"acme-corp"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, rt := tbl.Route(r); rt == nil || rt.Name != "last" {
			b.Fatal("no match")
		}
	}
}
