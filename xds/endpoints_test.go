package xds

import (
	"strconv"
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// endpointsOf flattens a load assignment to "host:port/weight" strings and
// checks the invariants grpc-go relies on.
func endpointsOf(t *testing.T, cla *endpointv3.ClusterLoadAssignment) []string {
	t.Helper()
	var out []string
	for _, loc := range cla.GetEndpoints() {
		if loc.GetLocality() == nil {
			t.Error("locality without a Locality message (grpc-go NACKs it)")
		}
		if loc.GetLoadBalancingWeight().GetValue() == 0 {
			t.Error("locality without weight (grpc-go drops it)")
		}
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, hostPortString(sa.GetAddress(), int(sa.GetPortValue()))+
				"/"+strconv.FormatUint(uint64(lb.GetLoadBalancingWeight().GetValue()), 10))
		}
	}
	return out
}

func TestLoadAssignment(t *testing.T) {
	inst := func(addr string, port int, h mesh.Health, passing, warning int) mesh.Instance {
		i := instance("api", addr, "n", addr, port, h)
		i.Weights = mesh.Weights{Passing: passing, Warning: warning}
		return i
	}
	tests := []struct {
		name      string
		instances []mesh.Instance
		warning   bool
		want      []string
	}{
		{
			name:      "only passing by default",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.2", 80, mesh.HealthWarning, 1, 1), inst("10.0.0.3", 80, mesh.HealthCritical, 1, 1), inst("10.0.0.4", 80, mesh.HealthMaintenance, 1, 1)},
			want:      []string{"10.0.0.1:80/1"},
		},
		{
			name:      "warning included weighs Weights.Warning",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 5, 2), inst("10.0.0.2", 80, mesh.HealthWarning, 5, 2)},
			warning:   true,
			want:      []string{"10.0.0.1:80/5", "10.0.0.2:80/2"},
		},
		{
			name:      "zero weight means Consul's default 1",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 0, 0)},
			want:      []string{"10.0.0.1:80/1"},
		},
		{
			name:      "huge weight is capped",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1<<30, 0)},
			want:      []string{"10.0.0.1:80/65536"},
		},
		{
			name:      "duplicate addresses collapse",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1)},
			want:      []string{"10.0.0.1:80/1"},
		},
		{
			name:      "sorted by address then port",
			instances: []mesh.Instance{inst("10.0.0.2", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.1", 81, mesh.HealthPassing, 1, 1), inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1)},
			want:      []string{"10.0.0.1:80/1", "10.0.0.1:81/1", "10.0.0.2:80/1"},
		},
		{
			name: "no address or port is skipped",
			instances: []mesh.Instance{
				inst("", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.1", 0, mesh.HealthPassing, 1, 1), inst("10.0.0.2", 80, mesh.HealthPassing, 1, 1),
			},
			want: []string{"10.0.0.2:80/1"},
		},
		{
			name: "other datacenters are skipped",
			instances: func() []mesh.Instance {
				i := inst("10.0.0.9", 80, mesh.HealthPassing, 1, 1)
				i.Datacenter = "dc9"
				return []mesh.Instance{i, inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1)}
			}(),
			want: []string{"10.0.0.1:80/1"},
		},
		{
			name:      "IPv6",
			instances: []mesh.Instance{inst("fd00::1", 80, mesh.HealthPassing, 1, 1)},
			want:      []string{"[fd00::1]:80/1"},
		},
		{
			name:      "nothing healthy gives no locality",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthCritical, 1, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cla := loadAssignment("c", tt.instances, testDC, tt.warning)
			if cla.GetClusterName() != "c" {
				t.Errorf("cluster_name = %q", cla.GetClusterName())
			}
			if err := cla.ValidateAll(); err != nil {
				t.Errorf("ValidateAll: %v", err)
			}
			if diff := cmp.Diff(tt.want, endpointsOf(t, cla)); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMeshInstances(t *testing.T) {
	withSidecars := testMesh().Services["api"]
	if got := meshInstances(withSidecars); got[0].Port != 21000 {
		t.Errorf("service with sidecars: got instance port %d, want the sidecar's 21000", got[0].Port)
	}
	plain := testMesh().Services["db"]
	if got := meshInstances(plain); got[0].Port != 5432 {
		t.Errorf("service without sidecars: got port %d, want its own 5432", got[0].Port)
	}
	if got := meshInstances(nil); got != nil {
		t.Errorf("unknown service: got %v", got)
	}
}

func TestIncludeWarning(t *testing.T) {
	tests := []struct {
		name    string
		cfg     mesh.Config
		want    bool
		wantErr bool
	}{
		{name: "default off"},
		{
			name: "proxy-defaults turns it on",
			cfg:  mesh.Config{ProxyDefaults: &mesh.ProxyDefaults{Config: map[string]string{IncludeWarningKey: "true"}}},
			want: true,
		},
		{
			name: "service-defaults wins over proxy-defaults",
			cfg: mesh.Config{
				ProxyDefaults:   &mesh.ProxyDefaults{Config: map[string]string{IncludeWarningKey: "true"}},
				ServiceDefaults: map[string]*mesh.ServiceDefaults{"api": {Meta: map[string]string{IncludeWarningKey: "false"}}},
			},
			want: false,
		},
		{
			name:    "not a bool",
			cfg:     mesh.Config{ProxyDefaults: &mesh.ProxyDefaults{Config: map[string]string{IncludeWarningKey: "yes please"}}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := includeWarning(&tt.cfg, "api")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("includeWarning = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
