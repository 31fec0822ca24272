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
		Resolvers:       map[string]*mesh.ServiceResolver{"api": {Name: "api"}},
		Routers:         map[string]*mesh.ServiceRouter{"api": {Name: "api"}},
		Splitters:       map[string]*mesh.ServiceSplitter{"pay": {Name: "pay"}},
	}
	tests := []struct {
		name  string
		names []string
		want  []string
	}{
		{"public listener is the proxy's service", []string{"public_listener"},
			[]string{"proxy-defaults/global", "service-defaults/web"}},
		{"subset cluster", []string{"v2.api.default.dc1.internal"},
			[]string{"proxy-defaults/global", "service-defaults/api", "service-resolver/api", "service-router/api"}},
		{"upstream listener in another datacenter", []string{"upstream:pay?dc=dc2"},
			[]string{"proxy-defaults/global", "service-splitter/pay"}},
		{"proxyless route", []string{"pay"}, []string{"proxy-defaults/global", "service-splitter/pay"}},
		{"unknown service", []string{"nope.default.dc1.internal"}, []string{"proxy-defaults/global"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, configEntries(snap, "web-1-sidecar-proxy", tt.names)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
