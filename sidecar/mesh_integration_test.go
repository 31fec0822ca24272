package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
	"github.com/seed-a778acb4/consulate/control-plane/server"
	"github.com/seed-a778acb4/consulate/discovery"
	"github.com/seed-a778acb4/consulate/internal/consultest"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

// startMeshControlPlane runs Consulate's control plane (discovery watcher
// and ADS server) in process against the Consul agent at a, and returns its
// xDS address and a function that stops it (also called at cleanup).
func startMeshControlPlane(t *testing.T, a *consultest.Agent, log *zap.Logger) (string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	watcher := discovery.NewWatcher(a.Client, discovery.Options{Coalesce: 20 * time.Millisecond}, log)
	srv := server.New(log, watcher, &server.XDS{}, metrics.New(prometheus.NewRegistry()),
		server.Options{Debounce: 20 * time.Millisecond, ShutdownGrace: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = watcher.Run(ctx); done <- struct{}{} }()
	go func() { _ = srv.Serve(ctx, lis); done <- struct{}{} }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			<-done
		})
	}
	t.Cleanup(stop)
	return lis.Addr().String(), stop
}

// registerWithSidecar registers a service instance with a Connect sidecar
// on sidecarPort, as Consul users do; the sidecar's check is a passing TTL
// so that the test does not wait for Consul's 10 s TCP check interval.
func registerWithSidecar(t *testing.T, c *api.Client, id, name string, appPort, sidecarPort int, upstreams []api.Upstream) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: name, Address: "127.0.0.1", Port: appPort,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port:   sidecarPort,
			Checks: api.AgentServiceChecks{{CheckID: "ttl-" + id + "-sidecar", TTL: "10m", Status: api.HealthPassing}},
			Proxy: &api.AgentServiceConnectProxyConfig{
				LocalServiceAddress: "127.0.0.1", LocalServicePort: appPort, Upstreams: upstreams,
			},
		}},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// runSidecar runs one sidecar binary (its run function) for proxyID.
func runSidecar(t *testing.T, controlPlane, proxyID string, protocol xdsclient.Protocol) started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan started, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, settings{ProxyID: proxyID, ControlPlane: controlPlane, AdminAddr: "127.0.0.1:0",
			XDSProtocol: protocol, DrainTimeout: time.Second},
			zaptest.NewLogger(t).Named(proxyID), func(s started) { got <- s })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar %s: %v", proxyID, err)
		}
	})
	select {
	case s := <-got:
		return s
	case err := <-done:
		t.Fatalf("sidecar %s: %v", proxyID, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("sidecar %s did not start", proxyID)
	}
	return started{}
}

// TestMeshThroughConsul is the whole path with the real things: a Consul
// agent holds web and api, each registered with a Connect sidecar; the
// control plane turns that into xDS; two sidecars (web's and api's) take
// it; a request to web's upstream port for api travels web sidecar → api
// sidecar → api's app.
func TestMeshThroughConsul(t *testing.T) {
	a := consultest.Start(t)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	// Panic routing off (threshold 0): api's only sidecar going critical
	// then stops its traffic (with Envoy's default 50 % the UNHEALTHY
	// endpoint would still be served, in panic).
	if _, _, err := a.Client.ConfigEntries().Set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": "http", "consulate_healthy_panic_threshold": "0"}}, nil); err != nil {
		t.Fatalf("proxy-defaults: %v", err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "api says hi to "+r.URL.Path)
	}))
	defer app.Close()
	appPort := app.Listener.Addr().(*net.TCPAddr).Port
	apiSidecarPort, webSidecarPort, bindPort := int(freePort(t)), int(freePort(t)), int(freePort(t))

	registerWithSidecar(t, a.Client, "api-1", "api", appPort, apiSidecarPort, nil)
	registerWithSidecar(t, a.Client, "web-1", "web", int(freePort(t)), webSidecarPort,
		[]api.Upstream{{DestinationName: "api", LocalBindPort: bindPort}})

	cp, stopControlPlane := startMeshControlPlane(t, a, log)
	// One sidecar per ADS protocol.
	apiSidecar := runSidecar(t, cp, "api-1-sidecar-proxy", xdsclient.SotW)
	web := runSidecar(t, cp, "web-1-sidecar-proxy", xdsclient.Delta)

	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	url := "http://127.0.0.1:" + strconv.Itoa(bindPort) + "/orders"
	// waitStatus polls url until it answers want.
	waitStatus := func(what string, want int) string {
		t.Helper()
		var lastCode int
		var lastBody string
		deadline := time.Now().Add(20 * time.Second)
		for {
			if resp, err := client.Get(url); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				lastCode, lastBody = resp.StatusCode, string(b)
				if lastCode == want {
					return lastBody
				}
			} else {
				lastCode, lastBody = 0, err.Error()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s: last %d %q, want %d; web sidecar ready=%v", what, url, lastCode, lastBody, want, web.Client.Ready())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if body := waitStatus("through the mesh", http.StatusOK); body != "api says hi to /orders" {
		t.Fatalf("body = %q", body)
	}

	// Consul says api's sidecar is failing: the control plane marks it
	// UNHEALTHY in EDS and web's sidecar (no panic routing) stops sending
	// it traffic (503, no healthy upstream); when it passes again, traffic
	// flows again.
	if err := a.Client.Agent().UpdateTTL("ttl-api-1-sidecar", "test", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitStatus("api's sidecar critical", http.StatusServiceUnavailable)
	if err := a.Client.Agent().UpdateTTL("ttl-api-1-sidecar", "test", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	waitStatus("api's sidecar passing again", http.StatusOK)

	// Static stability: with the control plane gone, the sidecars keep
	// serving their last configuration.
	stopControlPlane()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + web.AdminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "consulate_sidecar_xds_connected 0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("web's sidecar still reports a connected control plane")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 5 {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d with the control plane stopped: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "api says hi to /orders" {
			t.Fatalf("request %d with the control plane stopped: %d %q", i, resp.StatusCode, b)
		}
	}
	// The request reached the app through api's sidecar, not directly:
	// api's sidecar counted it on the host that is the app.
	var clusters struct {
		Clusters []struct {
			Name  string
			Hosts []struct {
				Address  string
				Requests *uint64
			}
		}
	}
	resp, err := client.Get("http://" + apiSidecar.AdminAddr + "/clusters?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&clusters); err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, c := range clusters.Clusters {
		for _, h := range c.Hosts {
			if h.Address == app.Listener.Addr().String() && h.Requests != nil {
				counted += *h.Requests
			}
		}
	}
	if counted < 1 {
		t.Fatalf("api's sidecar did not forward the request to the app: %+v", clusters)
	}
}
