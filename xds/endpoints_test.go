package xds

import (
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// endpointsOf flattens a load assignment to "host:port/weight" strings
// (" UNHEALTHY" appended for an unhealthy endpoint, "pN " prepended at
// priority N > 0) and checks the invariants grpc-go relies on.
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
		prefix := ""
		if p := loc.GetPriority(); p > 0 {
			prefix = "p" + strconv.FormatUint(uint64(p), 10) + " "
		}
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			s := prefix + hostPortString(sa.GetAddress(), int(sa.GetPortValue())) +
				"/" + strconv.FormatUint(uint64(lb.GetLoadBalancingWeight().GetValue()), 10)
			switch lb.GetHealthStatus() {
			case corev3.HealthStatus_HEALTHY:
			case corev3.HealthStatus_UNHEALTHY:
				s += " UNHEALTHY"
			default:
				t.Errorf("%s: health_status %v, want HEALTHY or UNHEALTHY", s, lb.GetHealthStatus())
			}
			out = append(out, s)
		}
	}
	return out
}

// TestEndpointHealth: the health status and weight are those Consul 1.14's
// xDS server gives (agent/xds/endpoints.go calculateEndpointHealthAndWeight).
func TestEndpointHealth(t *testing.T) {
	tests := []struct {
		name        string
		health      mesh.Health
		weights     mesh.Weights
		onlyPassing bool
		wantHealthy bool
		wantWeight  int
	}{
		{name: "passing weighs Weights.Passing", health: mesh.HealthPassing, weights: mesh.Weights{Passing: 5, Warning: 2}, wantHealthy: true, wantWeight: 5},
		{name: "passing without Weights weighs 1", health: mesh.HealthPassing, wantHealthy: true, wantWeight: 1},
		{name: "passing under OnlyPassing", health: mesh.HealthPassing, weights: mesh.Weights{Passing: 5, Warning: 2}, onlyPassing: true, wantHealthy: true, wantWeight: 5},
		{name: "warning is healthy and weighs Weights.Warning", health: mesh.HealthWarning, weights: mesh.Weights{Passing: 5, Warning: 2}, wantHealthy: true, wantWeight: 2},
		{name: "warning under OnlyPassing is unhealthy", health: mesh.HealthWarning, weights: mesh.Weights{Passing: 5, Warning: 2}, onlyPassing: true, wantWeight: 2},
		{name: "warning with Weights.Warning 0 is unhealthy, weight 1", health: mesh.HealthWarning, weights: mesh.Weights{Passing: 5}, wantWeight: 1},
		{name: "warning without Weights weighs 1", health: mesh.HealthWarning, wantHealthy: true, wantWeight: 1},
		{name: "critical is unhealthy and weighs Weights.Passing", health: mesh.HealthCritical, weights: mesh.Weights{Passing: 5, Warning: 2}, wantWeight: 5},
		{name: "maintenance is unhealthy", health: mesh.HealthMaintenance, weights: mesh.Weights{Passing: 5, Warning: 2}, wantWeight: 5},
		{name: "weight capped at 128", health: mesh.HealthPassing, weights: mesh.Weights{Passing: 65535, Warning: 1}, wantHealthy: true, wantWeight: 128},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := instance("api", "api-1", "n", "10.0.0.1", 80, tt.health)
			inst.Weights = tt.weights
			healthy, weight := endpointHealth(&inst, tt.onlyPassing)
			if healthy != tt.wantHealthy || weight != tt.wantWeight {
				t.Errorf("endpointHealth = %v, %d; want %v, %d", healthy, weight, tt.wantHealthy, tt.wantWeight)
			}
		})
	}
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
			name:      "only passing healthy by default, the others marked",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.2", 80, mesh.HealthWarning, 1, 1), inst("10.0.0.3", 80, mesh.HealthCritical, 1, 1), inst("10.0.0.4", 80, mesh.HealthMaintenance, 1, 1)},
			want:      []string{"10.0.0.1:80/1", "10.0.0.2:80/1 UNHEALTHY", "10.0.0.3:80/1 UNHEALTHY", "10.0.0.4:80/1 UNHEALTHY"},
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
			name:      "huge weight is capped as Consul does",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1<<30, 0)},
			want:      []string{"10.0.0.1:80/128"},
		},
		{
			name:      "duplicate addresses collapse",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1), inst("10.0.0.1", 80, mesh.HealthPassing, 1, 1)},
			want:      []string{"10.0.0.1:80/1"},
		},
		{
			name:      "a healthy duplicate wins",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthCritical, 1, 1), inst("10.0.0.1", 80, mesh.HealthPassing, 3, 1)},
			want:      []string{"10.0.0.1:80/3"},
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
			name:      "nothing healthy: every instance marked unhealthy",
			instances: []mesh.Instance{inst("10.0.0.1", 80, mesh.HealthCritical, 1, 1), inst("10.0.0.2", 80, mesh.HealthCritical, 1, 1)},
			want:      []string{"10.0.0.1:80/1 UNHEALTHY", "10.0.0.2:80/1 UNHEALTHY"},
		},
		{name: "no instances give no locality"},
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

// BenchmarkLoadAssignment100HalfCritical builds one cluster's endpoints
// from 100 instances, every other one critical (sent UNHEALTHY).
func BenchmarkLoadAssignment100HalfCritical(b *testing.B) {
	instances := make([]mesh.Instance, 100)
	for i := range instances {
		h := mesh.HealthPassing
		if i%2 == 1 {
			h = mesh.HealthCritical
		}
		instances[i] = instance("api", "api-"+strconv.Itoa(i), "n", "10.0."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250), 21000, h)
	}
	b.ReportAllocs()
	for b.Loop() {
		if cla := loadAssignment("api", instances, testDC, false); len(cla.GetEndpoints()[0].GetLbEndpoints()) != 100 {
			b.Fatal("want 100 endpoints")
		}
	}
}
