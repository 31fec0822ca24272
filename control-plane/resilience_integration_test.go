package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// registerWebN registers web-<n> with a sidecar web-<n>-sidecar-proxy whose
// upstream is api.
func registerWebN(t *testing.T, c *api.Client, n string) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-" + n, Name: "web", Address: "127.0.0.1", Port: 8080,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port:  21000,
			Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: []api.Upstream{{DestinationName: "api", LocalBindPort: 9191}}},
		}},
	})
	if err != nil {
		t.Fatalf("register web-%s: %v", n, err)
	}
}

// waitLog waits until the control plane has logged msg.
func waitLog(t *testing.T, cp *controlPlane, msg string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for cp.logs.FilterMessage(msg).Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no %q log within %v", msg, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fullSidecarConfig(v adstest.View) bool {
	return hasAll(v.Names(adstest.ListenerType), "public_listener", "upstream:api") &&
		hasAll(v.Names(adstest.ClusterType), "local_app", "api.default.dc1.internal") &&
		hasAll(v.Names(adstest.RouteType), "api") &&
		slices.Equal(apiEndpoints(v), []string{"127.0.0.1:7001"})
}

// TestConsulDown: with Consul stopped, a connected proxy keeps its
// configuration and a proxy connecting afterwards gets the last snapshot.
func TestConsulDown(t *testing.T) {
	a := consultest.Start(t)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	registerWebN(t, a.Client, "1")
	registerWebN(t, a.Client, "2")
	cp := startControlPlane(t, a.HTTPAddr)
	conn := adstest.Dial(t, cp.XDS)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	before := adstest.NewMirror(t, conn, nodeFor("web-1-sidecar-proxy"), "sotw", allTypes...)
	vBefore, err := before.WaitFor(ctx, "web-1's config", fullSidecarConfig)
	if err != nil {
		t.Fatalf("%v; have%s", err, describe(vBefore))
	}

	a.Stop()
	// Wait until the watcher has noticed, so that what follows runs with
	// the watcher in its outage mode.
	waitLog(t, cp, "consul unreachable, serving the last snapshot", 15*time.Second)

	t.Run("new proxy gets the last snapshot", func(t *testing.T) {
		after := adstest.NewMirror(t, conn, nodeFor("web-2-sidecar-proxy"), "delta", allTypes...)
		v, err := after.WaitFor(ctx, "web-2's config with Consul down", fullSidecarConfig)
		if err != nil {
			t.Fatalf("%v; have%s", err, describe(v))
		}
	})
	t.Run("connected proxy keeps its config", func(t *testing.T) {
		v := before.View()
		if v.Responses != vBefore.Responses {
			t.Errorf("responses went from %d to %d while Consul is down", vBefore.Responses, v.Responses)
		}
		if diff := cmp.Diff(vBefore.Versions, v.Versions); diff != "" {
			t.Errorf("versions changed with Consul down (-before +after):\n%s", diff)
		}
		if !fullSidecarConfig(v) {
			t.Errorf("config lost with Consul down:%s", describe(v))
		}
	})
	if code, _ := httpGet(t, "http://"+cp.Admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d with Consul down; want 200 (serving the last snapshot)", code)
	}
}

// TestReplicasServeIdenticalConfig: two control planes on one Consul give a
// sidecar and a proxyless client the same resources with the same versions.
func TestReplicasServeIdenticalConfig(t *testing.T) {
	a := consultest.Start(t)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	registerWeb(t, a.Client)
	one, two := startControlPlane(t, a.HTTPAddr), startControlPlane(t, a.HTTPAddr)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name string
		node *core.Node
		cond func(adstest.View) bool
	}{
		{"sidecar", nodeFor(webProxyID), fullSidecarConfig},
		{"proxyless", &core.Node{Id: "proxyless-1", UserAgentName: "gRPC Go"}, func(v adstest.View) bool {
			return hasAll(v.Names(adstest.ListenerType), "api") && hasAll(v.Names(adstest.ClusterType), "api.default.dc1.internal") &&
				hasAll(v.Names(adstest.RouteType), "api") && len(apiEndpoints(v)) == 1
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var views []adstest.View
			for _, cp := range []*controlPlane{one, two} {
				m := adstest.NewMirror(t, adstest.Dial(t, cp.XDS), tc.node, "sotw", allTypes...)
				v, err := m.WaitFor(ctx, tc.name+" config", tc.cond)
				if err != nil {
					t.Fatalf("%v; have%s", err, describe(v))
				}
				views = append(views, v)
			}
			if len(views[0].Versions) != 4 {
				t.Fatalf("versions %v, want 4 types", views[0].Versions)
			}
			if diff := cmp.Diff(views[0].Versions, views[1].Versions); diff != "" {
				t.Errorf("replicas disagree on versions (-one +two):\n%s", diff)
			}
			for _, typ := range allTypes {
				n0, n1 := views[0].Names(typ), views[1].Names(typ)
				slices.Sort(n0)
				slices.Sort(n1)
				if diff := cmp.Diff(n0, n1); diff != "" {
					t.Errorf("replicas disagree on %s names:\n%s", typ, diff)
				}
			}
		})
	}
}

// TestSignalExitsZero runs the binary (this test binary as main) with its
// configuration from the environment, waits until it is ready and serving a
// stream, sends SIGTERM or SIGINT and expects exit status 0 within 10s.
func TestSignalExitsZero(t *testing.T) {
	a := consultest.Start(t)
	registerWeb(t, a.Client)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) { runUntilSignal(t, a, sig) })
	}
}

func runUntilSignal(t *testing.T, a *consultest.Agent, sig syscall.Signal) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runMainEnv+"=1",
		"CONSUL_HTTP_ADDR="+a.HTTPAddr,
		"CONSULATE_XDS_ADDR=127.0.0.1:0", "CONSULATE_ADMIN_ADDR=127.0.0.1:0", "CONSULATE_LOG_FORMAT=json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan map[string]any, 256)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case lines <- m:
				default:
				}
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	var xdsAddr, adminAddr string
	timeout := time.After(15 * time.Second)
	for xdsAddr == "" {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("process ended before listening: %v", <-exited)
			}
			if m["msg"] == "control-plane starting" {
				xdsAddr, _ = m["xds_addr"].(string)
				adminAddr, _ = m["admin_addr"].(string)
			}
		case <-timeout:
			t.Fatal("no 'control-plane starting' line within 15s")
		}
	}
	waitReady(t, &controlPlane{addrs: addrs{XDS: xdsAddr, Admin: adminAddr}})
	c := adstest.NewSotW(t, adstest.Dial(t, xdsAddr), nodeFor(webProxyID))
	c.Subscribe(adstest.ListenerType)
	if r := c.Recv(10 * time.Second); r == nil {
		t.Fatal("no LDS response from the binary")
	}

	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range lines { // keep draining so the child never blocks on stderr
		}
	}()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("exit status %d after %v, want 0", ee.ExitCode(), sig)
		}
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("exit took %v, want under 10s", d)
		}
	case <-time.After(12 * time.Second):
		t.Fatalf("still running 12s after %v", sig)
	}
}
