package discovery

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

var (
	nodeA = &api.Node{Node: "node-a", Address: "10.0.0.1", Datacenter: "dc1", Meta: map[string]string{"zone": "a"}}
	nodeB = &api.Node{Node: "node-b", Address: "10.0.0.2", Datacenter: "dc1"}
)

func check(id, serviceID, status string) *api.HealthCheck {
	return &api.HealthCheck{CheckID: id, ServiceID: serviceID, Status: status}
}

func entry(node *api.Node, svc *api.AgentService, checks ...*api.HealthCheck) *api.ServiceEntry {
	return &api.ServiceEntry{Node: node, Service: svc, Checks: checks}
}

func sidecarEntry(node *api.Node, id, dest, destID string, port int) *api.ServiceEntry {
	return entry(node, &api.AgentService{
		Kind: api.ServiceKindConnectProxy, ID: id, Service: dest + "-sidecar-proxy", Port: port,
		Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: dest, DestinationServiceID: destID, LocalServicePort: 8080},
	})
}

func TestBuildSnapshotInstances(t *testing.T) {
	tests := []struct {
		name  string
		entry *api.ServiceEntry
		want  mesh.Instance
	}{
		{
			name:  "address falls back to the node's",
			entry: entry(nodeA, &api.AgentService{ID: "web-1", Service: "web", Port: 80, Weights: api.AgentWeights{Passing: 3, Warning: 1}}),
			want: mesh.Instance{ID: "web-1", Service: "web", Node: "node-a", Datacenter: "dc1", Address: "10.0.0.1", Port: 80,
				NodeMeta: map[string]string{"zone": "a"}, Health: mesh.HealthPassing, Weights: mesh.Weights{Passing: 3, Warning: 1}},
		},
		{
			name: "service address, tags and meta are kept",
			entry: entry(nodeB, &api.AgentService{ID: "web-2", Service: "web", Address: "192.168.1.9", Port: 81,
				Tags: []string{"canary"}, Meta: map[string]string{"version": "2"}}),
			want: mesh.Instance{ID: "web-2", Service: "web", Node: "node-b", Datacenter: "dc1", Address: "192.168.1.9", Port: 81,
				Tags: []string{"canary"}, Meta: map[string]string{"version": "2"}, Health: mesh.HealthPassing},
		},
		{
			name: "a failing node check makes the instance critical",
			entry: entry(nodeB, &api.AgentService{ID: "web-3", Service: "web"},
				check("serfHealth", "", api.HealthCritical), check("svc", "web-3", api.HealthPassing)),
			want: mesh.Instance{ID: "web-3", Service: "web", Node: "node-b", Datacenter: "dc1", Address: "10.0.0.2", Health: mesh.HealthCritical},
		},
		{
			name: "warning beats passing",
			entry: entry(nodeB, &api.AgentService{ID: "web-4", Service: "web"},
				check("serfHealth", "", api.HealthPassing), check("svc", "web-4", api.HealthWarning)),
			want: mesh.Instance{ID: "web-4", Service: "web", Node: "node-b", Datacenter: "dc1", Address: "10.0.0.2", Health: mesh.HealthWarning},
		},
		{
			name: "maintenance beats critical",
			entry: entry(nodeB, &api.AgentService{ID: "web-5", Service: "web"},
				check("_service_maintenance:web-5", "web-5", api.HealthCritical), check("svc", "web-5", api.HealthCritical)),
			want: mesh.Instance{ID: "web-5", Service: "web", Node: "node-b", Datacenter: "dc1", Address: "10.0.0.2", Health: mesh.HealthMaintenance},
		},
		{
			name:  "an unknown status counts as critical",
			entry: entry(nodeB, &api.AgentService{ID: "web-6", Service: "web"}, check("svc", "web-6", "confused")),
			want:  mesh.Instance{ID: "web-6", Service: "web", Node: "node-b", Datacenter: "dc1", Address: "10.0.0.2", Health: mesh.HealthCritical},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := BuildSnapshot(&Input{Services: map[string][]*api.ServiceEntry{"web": {tt.entry}}}, nil)
			svc := snap.Service("web")
			if svc == nil || len(svc.Instances) != 1 {
				t.Fatalf("web = %+v, want one instance", svc)
			}
			if diff := cmp.Diff(tt.want, svc.Instances[0]); diff != "" {
				t.Errorf("instance (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildSnapshotProxiesAndSidecars(t *testing.T) {
	in := &Input{Datacenter: "dc1", Index: 7, Services: map[string][]*api.ServiceEntry{
		// Deliberately out of (Node, ID) order.
		"web": {
			entry(nodeB, &api.AgentService{ID: "web-2", Service: "web", Port: 8080}),
			entry(nodeA, &api.AgentService{ID: "web-1", Service: "web", Port: 8080}),
		},
		"web-sidecar-proxy": {
			sidecarEntry(nodeB, "web-2-sidecar-proxy", "web", "web-2", 21001),
			entry(nodeA, &api.AgentService{
				Kind: api.ServiceKindConnectProxy, ID: "web-1-sidecar-proxy", Service: "web-sidecar-proxy", Port: 21000,
				Proxy: &api.AgentServiceConnectProxyConfig{
					DestinationServiceName: "web", DestinationServiceID: "web-1",
					LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080,
					Config: map[string]any{"protocol": "http", "bind_port": float64(21000), "tls": true, "nested": map[string]any{"a": []any{1.5, "x"}}, "none": nil},
					Upstreams: []api.Upstream{
						{DestinationName: "api", LocalBindPort: 9191, Config: map[string]any{"connect_timeout_ms": float64(2500)}},
						{DestinationType: api.UpstreamDestTypePreparedQuery, DestinationName: "nearest-db", Datacenter: "dc2", LocalBindAddress: "127.0.0.2", LocalBindPort: 9292},
					},
				},
			}),
		},
		// A sidecar for a service that is not registered: listed, not attached.
		"ghost-sidecar-proxy": {sidecarEntry(nodeA, "ghost-1-sidecar-proxy", "ghost", "ghost-1", 21002)},
	}}
	unsorted := slices.Clone(in.Services["web"])
	snap := BuildSnapshot(in, nil)

	if diff := cmp.Diff(unsorted, in.Services["web"]); diff != "" {
		t.Errorf("BuildSnapshot reordered its input:\n%s", diff)
	}
	if snap.Index != 7 || snap.Datacenter != "dc1" {
		t.Errorf("index, dc = %d, %q; want 7, dc1", snap.Index, snap.Datacenter)
	}
	ids := func(list []mesh.Instance) []string {
		var out []string
		for _, i := range list {
			out = append(out, i.ID)
		}
		return out
	}
	web := snap.Service("web")
	if diff := cmp.Diff([]string{"web-1", "web-2"}, ids(web.Instances)); diff != "" {
		t.Errorf("web instances (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"web-1-sidecar-proxy", "web-2-sidecar-proxy"}, ids(web.Sidecars)); diff != "" {
		t.Errorf("web sidecars (-want +got):\n%s", diff)
	}
	if web.Kind != mesh.KindTypical || snap.Service("web-sidecar-proxy").Kind != mesh.KindConnectProxy {
		t.Errorf("kinds = %q, %q", web.Kind, snap.Service("web-sidecar-proxy").Kind)
	}
	want := &mesh.Proxy{
		ID: "web-1-sidecar-proxy", Name: "web-sidecar-proxy", Node: "node-a", Address: "10.0.0.1", Port: 21000, Health: mesh.HealthPassing,
		DestinationService: "web", DestinationServiceID: "web-1", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080,
		Config: map[string]string{"protocol": "http", "bind_port": "21000", "tls": "true", "nested": `{"a":[1.5,"x"]}`, "none": ""},
		Upstreams: []mesh.Upstream{
			{DestinationType: "service", DestinationName: "api", LocalBindPort: 9191, Config: map[string]string{"connect_timeout_ms": "2500"}},
			{DestinationType: "prepared_query", DestinationName: "nearest-db", Datacenter: "dc2", LocalBindAddress: "127.0.0.2", LocalBindPort: 9292},
		},
	}
	if diff := cmp.Diff(want, snap.Proxy("web-1-sidecar-proxy")); diff != "" {
		t.Errorf("proxy (-want +got):\n%s", diff)
	}
	// Instances of one proxy service share rendered values only when equal.
	if px := snap.Proxy("web-2-sidecar-proxy"); px.Config != nil || px.Upstreams != nil {
		t.Errorf("web-2's proxy took web-1's config: %+v, %+v", px.Config, px.Upstreams)
	}
	if snap.Proxy("ghost-1-sidecar-proxy") == nil || snap.Service("ghost") != nil {
		t.Errorf("ghost sidecar: proxy %v, service %v; want the proxy listed and no ghost service", snap.Proxy("ghost-1-sidecar-proxy"), snap.Service("ghost"))
	}
	if len(snap.Proxies) != 3 {
		t.Errorf("%d proxies, want 3", len(snap.Proxies))
	}
}

func TestBuildSnapshotDuplicateProxyIDLowestNodeWins(t *testing.T) {
	in := &Input{Services: map[string][]*api.ServiceEntry{
		"web-sidecar-proxy": {sidecarEntry(nodeB, "web-1-sidecar-proxy", "web", "web-1", 2), sidecarEntry(nodeA, "web-1-sidecar-proxy", "web", "web-1", 1)},
	}}
	for range 5 {
		if got := BuildSnapshot(in, nil).Proxy("web-1-sidecar-proxy").Node; got != "node-a" {
			t.Fatalf("proxy node = %q, want node-a", got)
		}
	}
}

// TestIncrementalBuildMatchesFull drives the builder through random
// registrations, changes and removals and checks after each build that the
// incrementally assembled snapshot equals one built from scratch, and that
// services that did not change are shared, not copied.
func TestIncrementalBuildMatchesFull(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := []*api.Node{nodeA, nodeB}
	state := map[string][]*api.ServiceEntry{}
	b := newBuilder()
	var prev *mesh.Snapshot
	for step := range 200 {
		changed := map[string]bool{}
		for range 1 + rng.IntN(4) {
			s := rng.IntN(6)
			name := fmt.Sprintf("svc-%d", s)
			proxyName := name + "-sidecar-proxy"
			switch rng.IntN(4) {
			case 0: // remove the service
				delete(state, name)
				b.removeService(name)
				changed[name] = true
			case 1: // remove its sidecars
				delete(state, proxyName)
				b.removeService(proxyName)
				changed[proxyName] = true
			case 2: // new instances
				var list []*api.ServiceEntry
				for i := range 1 + rng.IntN(3) {
					list = append(list, entry(nodes[rng.IntN(2)], &api.AgentService{ID: fmt.Sprintf("%s-%d", name, i), Service: name, Port: step}))
				}
				state[name] = list
				b.setService(name, list)
				changed[name] = true
			case 3: // new sidecars, sometimes fronting another service
				var list []*api.ServiceEntry
				for i := range 1 + rng.IntN(3) {
					dest := name
					if rng.IntN(3) == 0 {
						dest = fmt.Sprintf("svc-%d", rng.IntN(6))
					}
					list = append(list, sidecarEntry(nodes[rng.IntN(2)], fmt.Sprintf("%s-%d-sidecar-proxy", name, i%2), dest, name, step))
				}
				state[proxyName] = list
				b.setService(proxyName, list)
				changed[proxyName] = true
			}
		}
		got := b.build("dc1", uint64(step), nil, nil)
		want := BuildSnapshot(&Input{Datacenter: "dc1", Index: uint64(step), Services: state}, nil)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d: incremental snapshot differs from a full build (-full +incremental):\n%s", step, diff)
		}
		if prev != nil {
			for name, svc := range got.Services {
				old := prev.Services[name]
				if !changed[name] && !changed[name+"-sidecar-proxy"] && old != nil && cmp.Equal(old, svc) && old != svc && len(svc.Sidecars) == 0 {
					t.Fatalf("step %d: unchanged service %s was copied, not shared", step, name)
				}
			}
		}
		prev = got
	}
}
