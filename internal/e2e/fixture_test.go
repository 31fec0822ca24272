package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// fixture is a Consul agent, proxy-defaults protocol=http and a control
// plane, plus whatever a test adds.
type fixture struct {
	consul *consultest.Agent
	cp     *launch.ControlPlane
	dir    string
}

func newFixture(t testing.TB, opts ...consultest.Option) *fixture {
	t.Helper()
	f := &fixture{consul: consultest.Start(t, opts...), dir: t.TempDir()}
	if err := launch.SetProtocol(f.consul.Client, "http"); err != nil {
		t.Fatal(err)
	}
	f.startControlPlane(t, 0, 0)
	return f
}

// startControlPlane starts the control plane (on the given ports, 0: free
// ones) and stops it at cleanup.
func (f *fixture) startControlPlane(t testing.TB, xdsPort, adminPort int) {
	t.Helper()
	cp, err := launch.StartControlPlane(t.Context(), bins.ControlPlane, f.dir, f.consul.HTTPAddr, xdsPort, adminPort)
	if err != nil {
		t.Fatal(err)
	}
	f.cp = cp
	t.Cleanup(func() {
		_ = cp.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("control-plane log, without pushes and ACKs (last 60 lines):\n%s", quietLog(cp.LogPath, 60))
		}
	})
}

// quietLog is the last n lines of a JSON log without the per-push and
// per-ACK lines, which drown what discovery and the builder said.
func quietLog(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"msg":"push"`) || strings.Contains(line, `"msg":"ACK"`) || strings.Contains(line, `"msg":"request"`) {
			continue
		}
		keep = append(keep, line)
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

// testApp is an in-test HTTP server standing in for a service instance.
type testApp struct {
	ID       string
	Port     int
	requests atomic.Int64
	// failing makes every non-health request answer 503 (the health
	// check, which Consul runs, still passes).
	failing atomic.Bool
	srv     *http.Server
}

// Kill closes the app's listener and every connection, as a crashed
// process would leave them.
func (a *testApp) Kill() { _ = a.srv.Close() }

// Fail makes the app answer 503 to every request but its health check
// (on), or serve again (off).
func (a *testApp) Fail(on bool) { a.failing.Store(on) }

// Requests is how many non-health requests the app answered.
func (a *testApp) Requests() int64 { return a.requests.Load() }

// waitRequests waits until the app has served n requests in all, or within
// passes; it reports whether it got there.
func (a *testApp) waitRequests(n int64, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for a.Requests() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// startApp serves 200 "<id>" (503 while failing, but for /healthz) on a
// free loopback port until cleanup.
func startApp(t testing.TB, id string) *testApp {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := &testApp{ID: id, Port: lis.Addr().(*net.TCPAddr).Port}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			a.requests.Add(1)
			if a.failing.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, id+" failing")
				return
			}
		}
		fmt.Fprint(w, id)
	})}
	a.srv = srv
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

// member is one registered instance with its app and its sidecar.
type member struct {
	launch.Instance
	App     *testApp
	Sidecar *launch.Sidecar
}

// addMember starts an app, registers it with a sidecar_service declaring
// upstreams (each with a free LocalBindPort), starts its sidecar and waits
// for the sidecar's /ready.
func (f *fixture) addMember(t testing.TB, service, id string, upstreams ...string) *member {
	t.Helper()
	ports, err := launch.FreePorts(1 + len(upstreams))
	if err != nil {
		t.Fatal(err)
	}
	m := &member{App: startApp(t, id)}
	m.Instance = launch.Instance{Service: service, ID: id, Version: "v1", AppPort: m.App.Port, SidecarPort: ports[0]}
	for i, u := range upstreams {
		m.Upstreams = append(m.Upstreams, launch.Upstream{Service: u, LocalBindPort: ports[1+i]})
	}
	if err := launch.Register(f.consul.Client, m.Instance); err != nil {
		t.Fatal(err)
	}
	f.startSidecar(t, t, m, 0)
	return m
}

// startSidecar starts m's sidecar (admin on adminPort, 0: a free one),
// stops it at owner's cleanup (a test that outlives the subtest t that
// starts it), and waits for /ready.
func (f *fixture) startSidecar(t, owner testing.TB, m *member, adminPort int) {
	t.Helper()
	sc, err := launch.StartSidecar(bins.Sidecar, f.dir, m.ProxyID(), f.cp.XDSAddr, adminPort)
	if err != nil {
		t.Fatal(err)
	}
	m.Sidecar = sc
	owner.Cleanup(func() {
		_ = sc.Stop(5 * time.Second)
		if owner.Failed() {
			owner.Logf("%s log tail:\n%s", sc.Name, sc.LogTail(4000))
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := sc.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

// upstreamURL is m's outbound listener for its first upstream.
func (m *member) upstreamURL() string {
	return "http://" + launch.Addr(m.Upstreams[0].LocalBindPort) + "/"
}

// waitHosts waits until m's sidecar has want healthy hosts for service.
func waitHosts(t testing.TB, m *member, service string, want int, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	if err := launch.WaitClusterHosts(ctx, m.Sidecar.Done(), m.Sidecar.AdminAddr, service+".", want); err != nil {
		t.Fatalf("%v\nsidecar log:\n%s", err, m.Sidecar.LogTail(3000))
	}
}

// pair is web-1 (upstream api) → api-1, both with sidecars, routable.
func (f *fixture) pair(t testing.TB) (web, api *member) {
	t.Helper()
	api = f.addMember(t, "api", "api-1")
	web = f.addMember(t, "web", "web-1", "api")
	waitHosts(t, web, "api", 1, 30*time.Second)
	return web, api
}
