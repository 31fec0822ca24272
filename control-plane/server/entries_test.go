package server

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func TestConfigEntries(t *testing.T) {
	snap := model(1, map[string][]string{"web-1-sidecar-proxy": {"api"}}, map[string][]int{"api": {1}})
	snap.Proxies["web-1-sidecar-proxy"].DestinationService = "web"
	snap.Config = mesh.Config{
		ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http"},
		ServiceDefaults: map[string]*mesh.ServiceDefaults{"web": {Name: "web"}, "api": {Name: "api"}},
		Resolvers: map[string]*mesh.ServiceResolver{
			"api":    {Name: "api"},
			"api-v2": {Name: "api-v2", Failover: map[string]mesh.ResolverFailover{"*": {Service: "api-dr"}}},
			"api-dr": {Name: "api-dr"},
		},
		Routers: map[string]*mesh.ServiceRouter{"api": {Name: "api", Routes: []mesh.Route{
			{Destination: &mesh.RouteDestination{Service: "billing"}},
			{Destination: &mesh.RouteDestination{ServiceSubset: "v2"}}, // empty Service: api itself
		}}},
		Splitters: map[string]*mesh.ServiceSplitter{
			"pay":     {Name: "pay"},
			"billing": {Name: "billing", Splits: []mesh.Split{{Weight: 50, Service: "api-v2"}, {Weight: 50, Service: "billing"}}},
		},
	}
	tests := []struct {
		name  string
		names []string
		want  []string
	}{
		{"public listener is the proxy's service", []string{"public_listener"},
			[]string{"proxy-defaults/global", "service-defaults/web"}},
		{"subset cluster: its service, and the proxy's own service-defaults (UpstreamConfig)", []string{"v2.api.default.dc1.internal"},
			[]string{"proxy-defaults/global", "service-defaults/api", "service-defaults/web", "service-resolver/api", "service-router/api"}},
		{"route configuration: the whole chain, router to splitter to resolver failover", []string{"api"},
			[]string{"proxy-defaults/global", "service-defaults/api", "service-resolver/api", "service-resolver/api-dr",
				"service-resolver/api-v2", "service-router/api", "service-splitter/billing"}},
		{"upstream listener: the whole chain", []string{"upstream:api"},
			[]string{"proxy-defaults/global", "service-defaults/api", "service-resolver/api", "service-resolver/api-dr",
				"service-resolver/api-v2", "service-router/api", "service-splitter/billing"}},
		{"cluster: the resolver's failover, not the routers that lead to it", []string{"api-v2.default.dc1.internal"},
			[]string{"proxy-defaults/global", "service-defaults/web", "service-resolver/api-dr", "service-resolver/api-v2"}},
		{"upstream listener in another datacenter", []string{"upstream:pay?dc=dc2"},
			[]string{"proxy-defaults/global", "service-splitter/pay"}},
		{"proxyless route", []string{"pay"}, []string{"proxy-defaults/global", "service-splitter/pay"}},
		{"unknown service", []string{"nope.default.dc1.internal"}, []string{"proxy-defaults/global", "service-defaults/web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, configEntries(snap, "web-1-sidecar-proxy", tt.names)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
