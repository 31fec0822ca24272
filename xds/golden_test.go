package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// goldenResources is the on-disk form: each type's resources, sorted by
// name, as protojson. Versions are left out (TestVersions covers them).
type goldenResources struct {
	Listeners []json.RawMessage `json:"listeners"`
	Routes    []json.RawMessage `json:"routes"`
	Clusters  []json.RawMessage `json:"clusters"`
	Endpoints []json.RawMessage `json:"endpoints"`
}

// renderGolden marshals res stably: protojson's output is deliberately
// unstable in whitespace, so each resource is compacted by encoding/json
// (RawMessage) and the whole document re-indented.
func renderGolden(t *testing.T, res *Resources) []byte {
	t.Helper()
	marshal := func(typ resource.Type) []json.RawMessage {
		out := []json.RawMessage{}
		for _, item := range res.Items(typ) {
			b, err := protojson.Marshal(item)
			if err != nil {
				t.Fatalf("protojson: %v", err)
			}
			out = append(out, b)
		}
		return out
	}
	doc := goldenResources{
		Listeners: marshal(resource.ListenerType),
		Routes:    marshal(resource.RouteType),
		Clusters:  marshal(resource.ClusterType),
		Endpoints: marshal(resource.EndpointType),
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return append(b, '\n')
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./xds -run Golden -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (-want +got; -update rewrites it):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}

// sidecarCase changes the fixture (testMesh) into one scenario.
type sidecarCase struct {
	name   string
	change func(s *mesh.Snapshot)
}

// sidecarCases are the golden scenarios for ForSidecar (also fed to the
// sidecar's decoder in TestSidecarDecoderAcceptsForSidecar).
var sidecarCases = []sidecarCase{
	{
		name: "sidecar_http_upstream",
		change: func(s *mesh.Snapshot) {
			setProtocol(s, "web", "http")
			setProtocol(s, "api", "http")
		},
	},
	{
		name: "sidecar_local_app_timeouts",
		change: func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["web"] = &mesh.ServiceDefaults{
				Name: "web", Protocol: "http",
				LocalConnectTimeout: 1500 * time.Millisecond, LocalRequestTimeout: 30 * time.Second,
			}
		},
	},
	{
		name: "sidecar_proxy_config_overrides_service_defaults",
		change: func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["web"] = &mesh.ServiceDefaults{
				Name: "web", Protocol: "http",
				LocalConnectTimeout: 1500 * time.Millisecond, LocalRequestTimeout: 30 * time.Second,
			}
			proxy(s).Config = map[string]string{
				"bind_address": "0.0.0.0", "bind_port": "20000",
				"local_connect_timeout_ms": "250", "local_request_timeout_ms": "0",
			}
		},
	},
	{
		name:   "sidecar_tcp_upstream",
		change: func(s *mesh.Snapshot) {},
	},
	{
		name: "sidecar_http_upstream_from_proxy_defaults",
		change: func(s *mesh.Snapshot) {
			// web inherits http from proxy-defaults; api overrides it.
			s.Config.ProxyDefaults = &mesh.ProxyDefaults{Protocol: "http", Config: map[string]string{"protocol": "http"}}
			setProtocol(s, "api", "tcp")
		},
	},
	{
		name: "sidecar_upstream_without_sidecars",
		change: func(s *mesh.Snapshot) {
			proxy(s).Upstreams = []mesh.Upstream{{DestinationName: "db", LocalBindPort: 5432}}
		},
	},
	{
		name: "sidecar_no_upstreams",
		change: func(s *mesh.Snapshot) {
			proxy(s).Upstreams = nil
			proxy(s).Address = ""
			proxy(s).LocalServiceAddress = "127.0.0.2"
		},
	},
	{
		name: "sidecar_grpc_and_http2_upstreams",
		change: func(s *mesh.Snapshot) {
			setProtocol(s, "web", "grpc")
			setProtocol(s, "api", "grpc")
			setProtocol(s, "db", "http2")
			proxy(s).Upstreams = append(proxy(s).Upstreams,
				mesh.Upstream{DestinationName: "db", LocalBindAddress: "127.0.0.5", LocalBindPort: 9292})
		},
	},
	{
		name: "sidecar_unhealthy_instances_marked",
		change: func(s *mesh.Snapshot) {
			api := s.Services["api"]
			api.Sidecars = []mesh.Instance{
				instance("api-sidecar-proxy", "api-1-sidecar-proxy", "node-2", "10.0.0.2", 21000, mesh.HealthPassing),
				instance("api-sidecar-proxy", "api-2-sidecar-proxy", "node-3", "10.0.0.3", 21000, mesh.HealthWarning),
				instance("api-sidecar-proxy", "api-3-sidecar-proxy", "node-6", "10.0.0.6", 21000, mesh.HealthCritical),
				instance("api-sidecar-proxy", "api-4-sidecar-proxy", "node-7", "10.0.0.7", 21000, mesh.HealthMaintenance),
			}
		},
	},
	{
		name: "sidecar_warning_instances_included",
		change: func(s *mesh.Snapshot) {
			s.Config.ServiceDefaults["api"] = &mesh.ServiceDefaults{Name: "api", Meta: map[string]string{IncludeWarningKey: "true"}}
			api := s.Services["api"]
			warn := instance("api-sidecar-proxy", "api-2-sidecar-proxy", "node-3", "10.0.0.3", 21000, mesh.HealthWarning)
			warn.Weights = mesh.Weights{Passing: 10, Warning: 3}
			pass := instance("api-sidecar-proxy", "api-1-sidecar-proxy", "node-2", "10.0.0.2", 21000, mesh.HealthPassing)
			pass.Weights = mesh.Weights{Passing: 10, Warning: 3}
			crit := instance("api-sidecar-proxy", "api-3-sidecar-proxy", "node-6", "10.0.0.6", 21000, mesh.HealthCritical)
			api.Sidecars = []mesh.Instance{pass, warn, crit}
		},
	},
	{
		name: "sidecar_remote_datacenter_upstream",
		change: func(s *mesh.Snapshot) {
			proxy(s).Upstreams = append(proxy(s).Upstreams,
				mesh.Upstream{DestinationName: "api", Datacenter: "dc2", LocalBindPort: 9192})
		},
	},
}

func TestForSidecarGolden(t *testing.T) {
	for _, tt := range allSidecarCases() {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			tt.change(snap)
			res, err := ForSidecar(snap, testProxy)
			if err != nil {
				t.Fatalf("ForSidecar: %v", err)
			}
			checkGolden(t, tt.name, renderGolden(t, res))
			// Without API listeners, go-control-plane's own check applies
			// too and must agree with ours.
			cs, err := res.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.Consistent(); err != nil {
				t.Errorf("go-control-plane finds the snapshot inconsistent: %v", err)
			}
		})
	}
}

func TestForProxylessGolden(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *mesh.Snapshot)
	}{
		{
			name:   "proxyless_grpc",
			change: func(s *mesh.Snapshot) { setProtocol(s, "api", "grpc") },
		},
		{
			// Also: a service without instances and a gateway get nothing.
			name: "proxyless_unhealthy_instances_excluded",
			change: func(s *mesh.Snapshot) {
				s.Services = map[string]*mesh.Service{"api": {
					Name: "api",
					Instances: []mesh.Instance{
						instance("api", "api-1", "node-2", "10.0.0.2", 8080, mesh.HealthPassing),
						instance("api", "api-2", "node-3", "10.0.0.3", 8080, mesh.HealthCritical),
						instance("api", "api-3", "node-4", "10.0.0.4", 8080, mesh.HealthWarning),
					},
				}, "empty": {Name: "empty"}, "gateway": {
					Name: "gateway", Kind: "mesh-gateway",
					Instances: []mesh.Instance{instance("gateway", "gw-1", "node-9", "10.0.0.9", 8443, mesh.HealthPassing)},
				}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			tt.change(snap)
			res, err := ForProxyless(snap)
			if err != nil {
				t.Fatalf("ForProxyless: %v", err)
			}
			checkGolden(t, tt.name, renderGolden(t, res))
		})
	}
}
