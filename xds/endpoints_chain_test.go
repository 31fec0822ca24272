package xds

import (
	"testing"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// claOf returns the load assignment named cluster in res.
func claOf(t *testing.T, res *Resources, cluster string) *endpointv3.ClusterLoadAssignment {
	t.Helper()
	for _, item := range res.Items(resource.EndpointType) {
		if cla := item.(*endpointv3.ClusterLoadAssignment); cla.GetClusterName() == cluster {
			return cla
		}
	}
	t.Fatalf("no load assignment %q among %v", cluster, res.Names(resource.EndpointType))
	return nil
}

// TestTargetLoadAssignmentHealth: what each client is sent of its
// targets' health. Sidecars get Consul's endpoints (unhealthy ones marked,
// so panic routing applies), except that a failover chain keeps Consul's
// "fail over only when nothing is healthy" without
// overprovisioning_factor; proxyless clients only get healthy endpoints.
func TestTargetLoadAssignmentHealth(t *testing.T) {
	apiSidecars := func(s *mesh.Snapshot, health ...mesh.Health) {
		for i, h := range health {
			s.Services["api"].Sidecars[i].Health = h
		}
	}
	failover := func(s *mesh.Snapshot) {
		policyMesh(s, "http")
		s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v1",
			Failover: map[string]mesh.ResolverFailover{"v1": {Targets: []mesh.FailoverTarget{{ServiceSubset: "v2"}, {Service: "api-canary"}}}}}}
	}
	includeWarning := func(s *mesh.Snapshot) {
		s.Config.ProxyDefaults = &mesh.ProxyDefaults{Config: map[string]string{IncludeWarningKey: "true"}}
	}
	tests := []struct {
		name      string
		proxyless bool
		change    func(s *mesh.Snapshot)
		cluster   string
		want      []string
	}{
		{
			name:    "critical instance present as UNHEALTHY",
			change:  func(s *mesh.Snapshot) { apiSidecars(s, mesh.HealthPassing, mesh.HealthCritical) },
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1", "10.0.0.3:21000/1 UNHEALTHY"},
		},
		{
			name:    "every instance critical (a Consul agent restart): all present as UNHEALTHY",
			change:  func(s *mesh.Snapshot) { apiSidecars(s, mesh.HealthCritical, mesh.HealthCritical) },
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1 UNHEALTHY", "10.0.0.3:21000/1 UNHEALTHY"},
		},
		{
			name:    "maintenance is UNHEALTHY",
			change:  func(s *mesh.Snapshot) { apiSidecars(s, mesh.HealthMaintenance, mesh.HealthPassing) },
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1 UNHEALTHY", "10.0.0.3:21000/1"},
		},
		{
			name: "a service without sidecars: its own instances, marked",
			change: func(s *mesh.Snapshot) {
				proxy(s).Upstreams = []mesh.Upstream{{DestinationName: "db", LocalBindPort: 9191}}
				s.Services["db"].Instances[1].Health = mesh.HealthCritical
			},
			cluster: "db.default.dc1.internal",
			want:    []string{"10.0.0.4:5432/1", "10.0.0.5:5432/1 UNHEALTHY"},
		},
		{
			name:    "warning is UNHEALTHY by default",
			change:  func(s *mesh.Snapshot) { apiSidecars(s, mesh.HealthPassing, mesh.HealthWarning) },
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1", "10.0.0.3:21000/1 UNHEALTHY"},
		},
		{
			name: "warning is HEALTHY with consulate_include_warning and weighs Weights.Warning",
			change: func(s *mesh.Snapshot) {
				includeWarning(s)
				apiSidecars(s, mesh.HealthPassing, mesh.HealthWarning)
				s.Services["api"].Sidecars[1].Weights = mesh.Weights{Passing: 10, Warning: 3}
			},
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1", "10.0.0.3:21000/3"},
		},
		{
			name: "an OnlyPassing subset marks warning UNHEALTHY despite consulate_include_warning",
			change: func(s *mesh.Snapshot) {
				policyMesh(s, "http")
				includeWarning(s)
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v2"}}
				apiSidecars(s, mesh.HealthPassing, mesh.HealthWarning)
			},
			cluster: "v2.api.default.dc1.internal",
			want:    []string{"10.0.0.3:21000/1 UNHEALTHY"},
		},
		{
			name: "a subset without OnlyPassing keeps warning HEALTHY with consulate_include_warning",
			change: func(s *mesh.Snapshot) {
				policyMesh(s, "http")
				includeWarning(s)
				s.Config.Resolvers = map[string]*mesh.ServiceResolver{"api": {Name: "api", Subsets: apiSubsets(), DefaultSubset: "v1"}}
				apiSidecars(s, mesh.HealthWarning, mesh.HealthPassing)
			},
			cluster: "v1.api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1"},
		},
		{
			name: "failover while the primary is healthy: only healthy endpoints",
			change: func(s *mesh.Snapshot) {
				failover(s)
				apiSidecars(s, mesh.HealthPassing, mesh.HealthCritical)
			},
			cluster: "v1.api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1", "p1 10.0.0.8:21000/1"},
		},
		{
			name: "failover when the primary is down: the first healthy target first",
			change: func(s *mesh.Snapshot) {
				failover(s)
				apiSidecars(s, mesh.HealthCritical, mesh.HealthPassing)
			},
			cluster: "v1.api.default.dc1.internal",
			want:    []string{"10.0.0.3:21000/1", "p1 10.0.0.8:21000/1"},
		},
		{
			name: "failover with nothing healthy: every endpoint UNHEALTHY at its priority",
			change: func(s *mesh.Snapshot) {
				failover(s)
				apiSidecars(s, mesh.HealthCritical, mesh.HealthCritical)
				s.Services["api-canary"].Sidecars[0].Health = mesh.HealthCritical
			},
			cluster: "v1.api.default.dc1.internal",
			want:    []string{"10.0.0.2:21000/1 UNHEALTHY", "p1 10.0.0.3:21000/1 UNHEALTHY", "p2 10.0.0.8:21000/1 UNHEALTHY"},
		},
		{
			name:      "proxyless: only healthy instances (grpc-go drops the others)",
			proxyless: true,
			change: func(s *mesh.Snapshot) {
				setProtocol(s, "api", "grpc")
				s.Services["api"].Instances[1].Health = mesh.HealthCritical
			},
			cluster: "api.default.dc1.internal",
			want:    []string{"10.0.0.2:8080/1"},
		},
		{
			name:      "proxyless: nothing healthy, no endpoints",
			proxyless: true,
			change: func(s *mesh.Snapshot) {
				setProtocol(s, "api", "grpc")
				s.Services["api"].Instances[0].Health = mesh.HealthCritical
				s.Services["api"].Instances[1].Health = mesh.HealthWarning
			},
			cluster: "api.default.dc1.internal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := testMesh()
			tt.change(snap)
			var res *Resources
			var err error
			if tt.proxyless {
				res, err = ForProxyless(snap)
			} else {
				res, err = ForSidecar(snap, testProxy)
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, endpointsOf(t, claOf(t, res, tt.cluster))); diff != "" {
				t.Errorf("endpoints of %s (-want +got):\n%s", tt.cluster, diff)
			}
		})
	}
}
