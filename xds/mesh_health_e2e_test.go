package xds

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/internal/consultest"
	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestPanicRoutingEndToEnd: real Consul, discovery, translation over ADS
// and the sidecar's data path (meshHarness). api's three instances are
// fine but their checks go critical, as after a Consul agent restart
// (Consul restores non-TTL checks as critical until they run again).
// Critical instances reach the sidecar as UNHEALTHY endpoints, so:
//   - with 2 of 3 critical (1/3 healthy, below the 50 % healthy panic
//     threshold) the sidecar is in panic and serves from all three;
//   - with all 3 critical it still serves from all three (no 503 UH);
//   - with 1 of 3 critical it avoids the critical one.
//
// With only passing endpoints sent, the first step would send everything
// to the one passing instance and the second would answer 503.
func TestPanicRoutingEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	a := consultest.Start(t)
	c := a.Client

	backends := []*e2eBackend{startE2EBackend(t, "api-1"), startE2EBackend(t, "api-2"), startE2EBackend(t, "api-3")}
	for _, b := range backends {
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: b.name, Name: "api", Address: "127.0.0.1", Port: b.port,
			Check: &api.AgentServiceCheck{CheckID: "ttl-" + b.name, TTL: "1h", Status: api.HealthPassing},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	passing := &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing}
	upstreamPort := e2eFreePort(t)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: e2eFreePort(t), Check: passing,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: "127.0.0.1", Port: e2eFreePort(t), Check: passing,
			Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: []api.Upstream{{DestinationName: "api", LocalBindPort: upstreamPort}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := c.ConfigEntries().Set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": "http"}}, nil); err != nil || !ok {
		t.Fatalf("writing proxy-defaults: ok=%v err=%v", ok, err)
	}
	h := startMeshHarness(ctx, t, c, "web-1-sidecar-proxy", upstreamPort)

	const cluster = "api.default.dc1.internal"
	// setCritical sets each instance's TTL check as critical says and
	// waits for the sidecar to apply the matching endpoint health.
	setCritical := func(critical ...bool) {
		t.Helper()
		start := time.Now()
		want := make(map[string]config.HealthStatus, len(backends))
		for i, b := range backends {
			status, health := api.HealthPassing, config.HealthHealthy
			if critical[i] {
				status, health = api.HealthCritical, config.HealthUnhealthy
			}
			if err := c.Agent().UpdateTTL("ttl-"+b.name, "", status); err != nil {
				t.Fatal(err)
			}
			want["127.0.0.1:"+strconv.Itoa(b.port)] = health
		}
		// Consul → discovery → ADS → sidecar takes tens of milliseconds.
		stepCtx, done := context.WithTimeout(ctx, 15*time.Second)
		defer done()
		d := h.waitApplied(stepCtx, t, "endpoint health "+fmt.Sprint(want), func(cfg *config.Config) bool {
			cl := cfg.Clusters[cluster]
			if cl == nil || len(cl.Endpoints) != len(want) {
				return false
			}
			for _, ep := range cl.Endpoints {
				if want[ep.Address] != ep.Health {
					return false
				}
			}
			return true
		})
		t.Logf("checks %v → applied by the sidecar after %v (%v since the first update)", critical, d, time.Since(start))
	}
	hits := func() []int64 {
		out := make([]int64, len(backends))
		for i, b := range backends {
			out[i] = b.hits.Load()
		}
		return out
	}
	// serve sends n requests, wants every one answered 200, and returns
	// how many each backend served.
	serve := func(n int) []int64 {
		t.Helper()
		before := hits()
		got := h.count("/", n) // by backend name, or by status when not 200
		for answer, k := range got {
			if _, err := strconv.Atoi(answer); err == nil {
				t.Errorf("%d of %d requests answered %s (%v), want all 200", k, n, answer, got)
			}
		}
		after := hits()
		for i := range after {
			after[i] -= before[i]
		}
		return after
	}

	setCritical(false, false, false)
	if got := serve(300); got[0] < 50 || got[1] < 50 || got[2] < 50 {
		t.Fatalf("all passing: backends served %v of 300, want all three", got)
	}

	setCritical(false, true, true)
	if got := serve(300); got[0] < 50 || got[1] < 50 || got[2] < 50 {
		t.Errorf("2 of 3 critical (panic): backends served %v of 300, want all three", got)
	} else {
		t.Logf("2 of 3 critical: served %v (panic routing)", got)
	}

	setCritical(true, true, true)
	if got := serve(300); got[0] < 50 || got[1] < 50 || got[2] < 50 {
		t.Errorf("3 of 3 critical (panic): backends served %v of 300, want all three", got)
	} else {
		t.Logf("3 of 3 critical: served %v (panic routing)", got)
	}

	setCritical(false, false, true)
	if got := serve(300); got[2] != 0 || got[0] < 50 || got[1] < 50 {
		t.Errorf("1 of 3 critical: backends served %v of 300, want api-1 and api-2 only", got)
	} else {
		t.Logf("1 of 3 critical: served %v (the critical one avoided)", got)
	}
}
