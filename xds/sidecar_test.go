package xds

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func TestForSidecarUnknownProxy(t *testing.T) {
	_, err := ForSidecar(testMesh(), "nobody-sidecar-proxy")
	if !errors.Is(err, ErrUnknownProxy) {
		t.Fatalf("error = %v, want ErrUnknownProxy", err)
	}
	if !strings.Contains(err.Error(), "nobody-sidecar-proxy") {
		t.Errorf("error %q does not name the proxy", err)
	}
}

func TestForSidecarNames(t *testing.T) {
	snap := testMesh()
	setProtocol(snap, "api", "http")
	proxy(snap).Upstreams = append(proxy(snap).Upstreams, mesh.Upstream{DestinationName: "db", LocalBindPort: 5432})
	res, err := ForSidecar(snap, testProxy)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		resource.ListenerType: {"public_listener", "upstream:api", "upstream:db"},
		resource.RouteType:    {"api"}, // db is tcp: no route configuration
		resource.ClusterType:  {"api.default.dc1.internal", "db.default.dc1.internal", "local_app"},
		resource.EndpointType: {"api.default.dc1.internal", "db.default.dc1.internal"},
	}
	for typ, names := range want {
		if diff := cmp.Diff(names, res.Names(typ)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", typ, diff)
		}
	}
}

// TestForSidecarOnlyItsUpstreams: a proxy receives what its upstreams need,
// not the whole mesh.
func TestForSidecarOnlyItsUpstreams(t *testing.T) {
	snap := testMesh()
	for i := range 50 {
		name := "other-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		snap.Services[name] = &mesh.Service{Name: name, Instances: []mesh.Instance{instance(name, name+"-1", "n", "10.1.0.1", 80, mesh.HealthPassing)}}
	}
	res, err := ForSidecar(snap, testProxy)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Names(resource.EndpointType); !slices.Equal(got, []string{"api.default.dc1.internal"}) {
		t.Errorf("endpoints = %v, want only the upstream's", got)
	}
}

func TestForSidecarErrors(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*mesh.Snapshot)
		wantErr []string // substrings
	}{
		{
			name:    "unknown protocol names the service-defaults entry",
			change:  func(s *mesh.Snapshot) { setProtocol(s, "api", "thrift") },
			wantErr: []string{"listeners for web-1-sidecar-proxy", "upstream api", "service-defaults/api", `"thrift"`},
		},
		{
			name: "unknown protocol names the proxy-defaults entry",
			change: func(s *mesh.Snapshot) {
				s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "udp"}
			},
			wantErr: []string{"public_listener", "proxy-defaults/global", `"udp"`},
		},
		{
			name: "upstream declared twice",
			change: func(s *mesh.Snapshot) {
				proxy(s).Upstreams = append(proxy(s).Upstreams, mesh.Upstream{DestinationName: "api", Datacenter: testDC, LocalBindPort: 9999})
			},
			wantErr: []string{"upstream api is declared twice"},
		},
		{
			name: "two upstreams on one bind address",
			change: func(s *mesh.Snapshot) {
				proxy(s).Upstreams = append(proxy(s).Upstreams, mesh.Upstream{DestinationName: "db", LocalBindPort: 9191})
			},
			wantErr: []string{"upstreams api and db both bind 127.0.0.1:9191"},
		},
		{
			name: "prepared query upstream",
			change: func(s *mesh.Snapshot) {
				proxy(s).Upstreams = []mesh.Upstream{{DestinationType: "prepared_query", DestinationName: "q", LocalBindPort: 9000}}
			},
			wantErr: []string{"upstream q", `destination type "prepared_query" is not supported`},
		},
		{
			name:    "upstream without a bind port",
			change:  func(s *mesh.Snapshot) { proxy(s).Upstreams[0].LocalBindPort = 0 },
			wantErr: []string{"upstream api: local bind port 0"},
		},
		{
			name:    "proxy without a port",
			change:  func(s *mesh.Snapshot) { proxy(s).Port = 0 },
			wantErr: []string{"listeners for web-1-sidecar-proxy", "proxy port 0"},
		},
		{
			name:    "proxy without a local service port",
			change:  func(s *mesh.Snapshot) { proxy(s).LocalServicePort = 0 },
			wantErr: []string{"listeners for web-1-sidecar-proxy", "local service port 0"},
		},
		{
			name: "include-warning that is not a bool",
			change: func(s *mesh.Snapshot) {
				s.Config.ServiceDefaults["api"] = &mesh.ServiceDefaults{Name: "api", Meta: map[string]string{IncludeWarningKey: "sometimes"}}
			},
			wantErr: []string{"clusters for web-1-sidecar-proxy", "service-defaults/api", IncludeWarningKey},
		},
		{
			name:    "proxy Config bind_port that is not a number",
			change:  func(s *mesh.Snapshot) { proxy(s).Config = map[string]string{"bind_port": "eighty"} },
			wantErr: []string{"listeners for web-1-sidecar-proxy", "public_listener", `proxy Config[bind_port] = "eighty"`},
		},
		{
			name:    "proxy Config timeout that is negative",
			change:  func(s *mesh.Snapshot) { proxy(s).Config = map[string]string{"local_request_timeout_ms": "-1"} },
			wantErr: []string{`proxy Config[local_request_timeout_ms] = "-1"`},
		},
		{
			name: "upstream on the public listener's port",
			change: func(s *mesh.Snapshot) {
				proxy(s).Address = ""
				proxy(s).Upstreams[0].LocalBindPort = 21000
			},
			wantErr: []string{"sidecar web-1-sidecar-proxy", `listeners "public_listener" and "upstream:api" both bind port 21000 (0.0.0.0, 127.0.0.1)`},
		},
		{
			name:    "upstream without a destination",
			change:  func(s *mesh.Snapshot) { proxy(s).Upstreams[0].DestinationName = "" },
			wantErr: []string{"listeners for web-1-sidecar-proxy", "upstream without a destination name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			tt.change(snap)
			_, err := ForSidecar(snap, testProxy)
			if err == nil {
				t.Fatal("ForSidecar succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}
