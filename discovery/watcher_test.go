package discovery

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

func instanceHealth(s *mesh.Snapshot, service, id string) mesh.Health {
	for _, inst := range s.Service(service).Instances {
		if inst.ID == id {
			return inst.Health
		}
	}
	return ""
}

// TestWatcherFollowsRegistrationHealthDeregistration registers a service
// with a Connect sidecar, fails its TTL check and deregisters it, through
// a real agent, and sees each step in the snapshots.
func TestWatcherFollowsRegistrationHealthDeregistration(t *testing.T) {
	a := consultest.Start(t)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, zaptest.NewLogger(t))
	waitSnapshot(t, w, 20*time.Second, "the consul service", func(s *mesh.Snapshot) bool { return s.Service("consul") != nil })

	reg := &api.AgentServiceRegistration{
		ID:   "web-1",
		Name: "web",
		Port: 8080,
		Tags: []string{"v1", "primary"},
		Meta: map[string]string{"team": "payments"},
		Check: &api.AgentServiceCheck{
			CheckID: "web-1-ttl", TTL: "10m", Status: api.HealthPassing,
		},
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port: 21000,
			Proxy: &api.AgentServiceConnectProxyConfig{
				Config: map[string]any{"protocol": "http", "handshake_timeout_ms": 500, "tracing": map[string]any{"on": true}},
				Upstreams: []api.Upstream{{
					DestinationName:  "api",
					Datacenter:       "dc1",
					LocalBindAddress: "127.0.0.1",
					LocalBindPort:    9191,
					Config:           map[string]any{"connect_timeout_ms": 3000},
				}},
			},
		}},
	}
	if err := a.Client.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register: %v", err)
	}
	s := waitSnapshot(t, w, 10*time.Second, "web and its sidecar", func(s *mesh.Snapshot) bool {
		web := s.Service("web")
		return web != nil && len(web.Instances) == 1 && len(web.Sidecars) == 1 && s.Proxy("web-1-sidecar-proxy") != nil
	})

	wantInstance := mesh.Instance{
		ID: "web-1", Service: "web", Node: a.NodeName, Datacenter: "dc1",
		Address: "127.0.0.1", // no service address: the node's
		Port:    8080, Tags: []string{"v1", "primary"}, Meta: map[string]string{"team": "payments"},
		Health: mesh.HealthPassing, Weights: mesh.Weights{Passing: 1, Warning: 1},
	}
	if diff := cmp.Diff(wantInstance, s.Service("web").Instances[0], cmpopts.IgnoreFields(mesh.Instance{}, "NodeMeta")); diff != "" {
		t.Errorf("web instance (-want +got):\n%s", diff)
	}
	wantProxy := &mesh.Proxy{
		ID: "web-1-sidecar-proxy", Name: "web-sidecar-proxy", Node: a.NodeName, Address: "127.0.0.1", Port: 21000,
		DestinationService: "web", DestinationServiceID: "web-1",
		LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080,
		Config: map[string]string{"protocol": "http", "handshake_timeout_ms": "500", "tracing": `{"on":true}`},
		Upstreams: []mesh.Upstream{{
			DestinationType: "service", DestinationName: "api", Datacenter: "dc1",
			LocalBindAddress: "127.0.0.1", LocalBindPort: 9191,
			Config: map[string]string{"connect_timeout_ms": "3000"},
		}},
	}
	// The sidecar's own checks (listening, aliasing) decide its health.
	if diff := cmp.Diff(wantProxy, s.Proxy("web-1-sidecar-proxy"), cmpopts.IgnoreFields(mesh.Proxy{}, "Health")); diff != "" {
		t.Errorf("proxy (-want +got):\n%s", diff)
	}
	if got := s.Service("web").Sidecars[0].ID; got != "web-1-sidecar-proxy" {
		t.Errorf("web sidecar = %q, want web-1-sidecar-proxy", got)
	}
	if got := s.Service("web-sidecar-proxy").Kind; got != mesh.KindConnectProxy {
		t.Errorf("web-sidecar-proxy kind = %q, want %q", got, mesh.KindConnectProxy)
	}

	if err := a.Client.Agent().UpdateTTL("web-1-ttl", "database gone", api.HealthCritical); err != nil {
		t.Fatalf("update TTL: %v", err)
	}
	waitSnapshot(t, w, 10*time.Second, "web-1 critical", func(s *mesh.Snapshot) bool {
		return s.Service("web") != nil && instanceHealth(s, "web", "web-1") == mesh.HealthCritical
	})
	if err := a.Client.Agent().UpdateTTL("web-1-ttl", "", api.HealthWarning); err != nil {
		t.Fatalf("update TTL: %v", err)
	}
	waitSnapshot(t, w, 10*time.Second, "web-1 warning", func(s *mesh.Snapshot) bool {
		return s.Service("web") != nil && instanceHealth(s, "web", "web-1") == mesh.HealthWarning
	})

	if err := a.Client.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	waitSnapshot(t, w, 10*time.Second, "web and its sidecar gone", func(s *mesh.Snapshot) bool {
		return s.Service("web") == nil && s.Service("web-sidecar-proxy") == nil && s.Proxy("web-1-sidecar-proxy") == nil
	})
}

// TestWatcherSeesInstanceWithoutChecks adds a second, check-less instance
// of an existing service with the same tags: neither the service list nor
// the checks change, only the catalog index does.
func TestWatcherSeesInstanceWithoutChecks(t *testing.T) {
	a := consultest.Start(t)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, zaptest.NewLogger(t))
	for _, id := range []string{"db-1", "db-2"} {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "db", Port: 5432, Address: "10.0.0.1", Tags: []string{"pg"}}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		waitSnapshot(t, w, 10*time.Second, id, func(s *mesh.Snapshot) bool {
			return s.Service("db") != nil && instanceHealth(s, "db", id) == mesh.HealthPassing
		})
	}
	if err := a.Client.Agent().ServiceDeregister("db-1"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	waitSnapshot(t, w, 10*time.Second, "db-1 gone", func(s *mesh.Snapshot) bool {
		return s.Service("db") != nil && len(s.Service("db").Instances) == 1
	})
}

// TestWatcherNodeCheckAffectsEveryInstance fails a node-level check: every
// instance on the node turns critical, though no service check changed.
func TestWatcherNodeCheckAffectsEveryInstance(t *testing.T) {
	a := consultest.Start(t)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, zaptest.NewLogger(t))
	for _, name := range []string{"cache", "queue"} {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: name + "-1", Name: name, Port: 7000}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Client.Agent().CheckRegister(&api.AgentCheckRegistration{ID: "disk", Name: "disk", AgentServiceCheck: api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	bothAre := func(h mesh.Health) func(*mesh.Snapshot) bool {
		return func(s *mesh.Snapshot) bool {
			return s.Service("cache") != nil && s.Service("queue") != nil &&
				instanceHealth(s, "cache", "cache-1") == h && instanceHealth(s, "queue", "queue-1") == h
		}
	}
	waitSnapshot(t, w, 10*time.Second, "both passing", bothAre(mesh.HealthPassing))
	if err := a.Client.Agent().UpdateTTL("disk", "disk full", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 10*time.Second, "both critical", bothAre(mesh.HealthCritical))
}
