package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// mustAPIListener, mustEDSCluster and mustTCPListener build single
// resources for Validate cases.
func mustAPIListener(t *testing.T, name string) *listenerv3.Listener {
	t.Helper()
	l, err := apiListener(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustEDSCluster(t *testing.T, name string) *clusterv3.Cluster {
	t.Helper()
	c, err := edsCluster(name, DefaultConnectTimeout, ProtocolTCP)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustUpstreamListener(t *testing.T, id string, proto Protocol, cluster string) *listenerv3.Listener {
	t.Helper()
	l, err := upstreamListener(id, "127.0.0.1", 9191, proto, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestValidate(t *testing.T) {
	const cluster = "api.default.dc1.internal"
	cla := func(name string) types.Resource { return loadAssignment(name, nil, testDC, false) }
	tests := []struct {
		name    string
		items   func(t *testing.T) []types.Resource
		wantErr string // substring; "" means valid
	}{
		{
			name: "consistent proxyless set",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustAPIListener(t, "api"), proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)}), mustEDSCluster(t, cluster), cla(cluster)}
			},
		},
		{
			name: "dangling RDS name inside api_listener",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustAPIListener(t, "api"), mustEDSCluster(t, cluster), cla(cluster)}
			},
			wantErr: `listener "api": route configuration "api" does not exist`,
		},
		{
			name: "dangling RDS name in a filter chain",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustUpstreamListener(t, "api", ProtocolHTTP, cluster), mustEDSCluster(t, cluster), cla(cluster)}
			},
			wantErr: `listener "upstream:api": route configuration "api" does not exist`,
		},
		{
			name: "missing EDS assignment",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustAPIListener(t, "api"), proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)}), mustEDSCluster(t, cluster)}
			},
			wantErr: `cluster "api.default.dc1.internal": load assignment "api.default.dc1.internal" does not exist`,
		},
		{
			name: "route to a missing cluster",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustAPIListener(t, "api"), proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)})}
			},
			wantErr: `route configuration "api": cluster "api.default.dc1.internal" does not exist`,
		},
		{
			name: "tcp_proxy to a missing cluster",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{mustUpstreamListener(t, "api", ProtocolTCP, cluster)}
			},
			wantErr: `listener "upstream:api": cluster "api.default.dc1.internal" does not exist`,
		},
		{
			name: "inline route to a missing cluster",
			items: func(t *testing.T) []types.Resource {
				l, err := publicListener("0.0.0.0", 21000, ProtocolHTTP, nil)
				if err != nil {
					t.Fatal(err)
				}
				return []types.Resource{l}
			},
			wantErr: `listener "public_listener": cluster "local_app" does not exist`,
		},
		{
			name: "same port on two specific addresses",
			items: func(t *testing.T) []types.Resource {
				a, err := upstreamListener("a", "127.0.0.1", 9000, ProtocolTCP, cluster)
				if err != nil {
					t.Fatal(err)
				}
				b, err := upstreamListener("b", "127.0.0.2", 9000, ProtocolTCP, cluster)
				if err != nil {
					t.Fatal(err)
				}
				return []types.Resource{a, b, mustEDSCluster(t, cluster), cla(cluster)}
			},
		},
		{
			name: "same port on a specific and the wildcard address",
			items: func(t *testing.T) []types.Resource {
				a, err := upstreamListener("a", "127.0.0.1", 9000, ProtocolTCP, cluster)
				if err != nil {
					t.Fatal(err)
				}
				b, err := upstreamListener("b", "::", 9000, ProtocolTCP, cluster)
				if err != nil {
					t.Fatal(err)
				}
				return []types.Resource{a, b, mustEDSCluster(t, cluster), cla(cluster)}
			},
			wantErr: `listeners "upstream:a" and "upstream:b" both bind port 9000`,
		},
		{
			name: "unreferenced route configuration",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)}), mustEDSCluster(t, cluster), cla(cluster)}
			},
			wantErr: `route configuration "api" is not referenced by any listener`,
		},
		{
			name: "unreferenced load assignment",
			items: func(t *testing.T) []types.Resource {
				return []types.Resource{cla(cluster)}
			},
			wantErr: `load assignment "api.default.dc1.internal" is not referenced by any EDS cluster`,
		},
		{
			name: "resource breaks its own rules",
			items: func(t *testing.T) []types.Resource {
				rc := proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)})
				rc.VirtualHosts[0].Domains = nil // min_items: 1
				return []types.Resource{mustAPIListener(t, "api"), rc, mustEDSCluster(t, cluster), cla(cluster)}
			},
			wantErr: `route configuration "api": invalid RouteConfiguration.VirtualHosts[0]: embedded message failed validation`,
		},
		{
			name: "api_listener that is not an HttpConnectionManager",
			items: func(t *testing.T) []types.Resource {
				l := mustAPIListener(t, "api")
				a, err := toAny(&routev3.RouteConfiguration{Name: "x"})
				if err != nil {
					t.Fatal(err)
				}
				l.ApiListener.ApiListener = a
				return []types.Resource{l}
			},
			wantErr: `listener "api": api_listener is type.googleapis.com/envoy.config.route.v3.RouteConfiguration`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := NewResources(tt.items(t)...)
			if err != nil {
				t.Fatalf("NewResources: %v", err)
			}
			err = Validate(res)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate passed, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate: %v\nwant it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateCatchesWhatGoControlPlaneMisses shows why Validate exists:
// go-control-plane's Snapshot.Consistent (v0.14) does not look inside
// api_listener, so it passes a proxyless set whose route configuration is
// missing and fails a complete one. Validate gets both right.
func TestValidateCatchesWhatGoControlPlaneMisses(t *testing.T) {
	const cluster = "api.default.dc1.internal"
	build := func(t *testing.T, items ...types.Resource) *Resources {
		t.Helper()
		res, err := NewResources(items...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	consistent := func(t *testing.T, res *Resources) error {
		t.Helper()
		snap, err := res.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return snap.Consistent()
	}
	t.Run("dangling", func(t *testing.T) {
		res := build(t, mustAPIListener(t, "api"), mustEDSCluster(t, cluster), loadAssignment(cluster, nil, testDC, false))
		if err := consistent(t, res); err != nil {
			t.Logf("go-control-plane sees the dangling name now: %v", err)
		}
		if err := Validate(res); err == nil {
			t.Fatal("Validate passed an api_listener whose route configuration does not exist")
		}
	})
	t.Run("complete", func(t *testing.T) {
		res := build(t, mustAPIListener(t, "api"), proxylessRouteConfig("api", []*routev3.Route{defaultRoute(cluster)}),
			mustEDSCluster(t, cluster), loadAssignment(cluster, nil, testDC, false))
		if err := Validate(res); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if err := consistent(t, res); err == nil {
			t.Log("go-control-plane accepts api_listener references now; Validate may defer to it")
		}
	})
}

func TestNewResourcesRejects(t *testing.T) {
	tests := []struct {
		name    string
		items   []types.Resource
		wantErr string
	}{
		{
			name:    "duplicate names",
			items:   []types.Resource{&routev3.RouteConfiguration{Name: "a"}, &routev3.RouteConfiguration{Name: "a"}},
			wantErr: `routes: duplicate name "a"`,
		},
		{
			name:    "unnamed resource",
			items:   []types.Resource{&clusterv3.Cluster{}},
			wantErr: "clusters: resource without a name",
		},
		{
			name:    "unsupported type",
			items:   []types.Resource{&routev3.VirtualHost{Name: "vh"}},
			wantErr: "unsupported resource type " + resource.VirtualHostType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewResources(tt.items...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewResources error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
