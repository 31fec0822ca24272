package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/control-plane/server"
)

// controlPlane is a control plane run in-process by run(), exactly as main
// wires it, on loopback ports.
type controlPlane struct {
	addrs
	logs *observer.ObservedLogs
}

// startControlPlane runs the control plane against consulAddr until the
// test ends.
func startControlPlane(t *testing.T, consulAddr string) *controlPlane {
	t.Helper()
	obs, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(obs)
	cfg := config{ConsulAddr: consulAddr, XDSAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "info", LogFormat: "json", Debounce: 20 * time.Millisecond, Shutdown: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan addrs, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, log, func(a addrs) { got <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	select {
	case a := <-got:
		cp := &controlPlane{addrs: a, logs: logs}
		waitReady(t, cp)
		return cp
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	return nil
}

// waitReady waits for /readyz to answer 200.
func waitReady(t *testing.T, cp *controlPlane) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, _ := httpGet(t, "http://"+cp.Admin+"/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after 15s", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// registerAPI registers an instance of "api" (no sidecar: the mesh reaches
// it directly) with a passing TTL check "ttl-<id>".
func registerAPI(t *testing.T, c *api.Client, id string, port int) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "api", Address: "127.0.0.1", Port: port,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// registerWeb registers web-1 with a Connect sidecar (ID
// web-1-sidecar-proxy) whose upstream is api on 127.0.0.1:9191.
func registerWeb(t *testing.T, c *api.Client) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: 8080,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port: 21000,
			Proxy: &api.AgentServiceConnectProxyConfig{
				Upstreams: []api.Upstream{{DestinationName: "api", LocalBindPort: 9191}},
			},
		}},
	})
	if err != nil {
		t.Fatalf("register web-1: %v", err)
	}
}

const webProxyID = "web-1-sidecar-proxy"

// setProtocolHTTP writes the global proxy-defaults with protocol http, so
// upstream listeners route over RDS.
func setProtocolHTTP(t *testing.T, c *api.Client) {
	t.Helper()
	_, _, err := c.ConfigEntries().Set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": "http"}}, nil)
	if err != nil {
		t.Fatalf("write proxy-defaults: %v", err)
	}
}

// describe summarises a view for failure messages.
func describe(v adstest.View) string {
	var b strings.Builder
	for _, typ := range []string{adstest.ListenerType, adstest.RouteType, adstest.ClusterType, adstest.EndpointType} {
		names := v.Names(typ)
		slices.Sort(names)
		fmt.Fprintf(&b, "\n  %s %s: %v", typ[strings.LastIndexByte(typ, '.')+1:], v.Versions[typ], names)
	}
	fmt.Fprintf(&b, "\n  api endpoints: %v", apiEndpoints(v))
	return b.String()
}

// apiEndpoints lists the host:port of the HEALTHY endpoints of the api
// clusters in a view (the ones that receive traffic outside panic mode).
func apiEndpoints(v adstest.View) []string { return apiEndpointsWith(v, core.HealthStatus_HEALTHY) }

// apiEndpointsWith lists the host:port of the api clusters' endpoints
// whose health_status is health (sidecars also get critical instances,
// UNHEALTHY, as Consul sends them).
func apiEndpointsWith(v adstest.View, health core.HealthStatus) []string {
	var out []string
	for name := range v.Resources[adstest.EndpointType] {
		if !strings.HasPrefix(name, "api.") {
			continue
		}
		var cla endpointv3.ClusterLoadAssignment
		if !v.Decode(adstest.EndpointType, name, &cla) {
			continue
		}
		for _, loc := range cla.GetEndpoints() {
			for _, lb := range loc.GetLbEndpoints() {
				if lb.GetHealthStatus() != health {
					continue
				}
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
			}
		}
	}
	return out
}

func hasAll(names []string, want ...string) bool {
	set := map[string]bool{}
	for _, n := range names {
		set[n] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}

// statusOf finds a node's entries in the server's status.
func statusOf(srv *server.Server, nodeID string) []server.ProxyStatus {
	var out []server.ProxyStatus
	for _, p := range srv.Status() {
		if p.NodeID == nodeID {
			out = append(out, p)
		}
	}
	return out
}

// waitStreams polls nodeID's /status entries until ok accepts them or within
// passes, and returns the last ones seen.
func waitStreams(t *testing.T, srv *server.Server, nodeID string, ok func([]server.ProxyStatus) bool, within time.Duration) []server.ProxyStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := statusOf(srv, nodeID)
		if ok(got) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodeFor is the xDS node of a sidecar test client.
func nodeFor(id string) *core.Node {
	return &core.Node{Id: id, Cluster: "web", UserAgentName: "consulate-test"}
}

// waitRebuiltAt waits until the control plane has rebuilt its proxies from
// a model at least as new as Consul index idx.
func waitRebuiltAt(t *testing.T, cp *controlPlane, idx uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, e := range cp.logs.FilterMessage("rebuilt").All() {
			if i, ok := e.ContextMap()["consul_index"].(uint64); ok && i >= idx {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no rebuild at Consul index >= %d within 5s", idx)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
