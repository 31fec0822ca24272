package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// outageRequests is how many successful requests a test wants to see
// during an outage before it ends the outage: at loadPace that is about
// two seconds of traffic with the failed component gone.
const outageRequests = 150

// TestControlPlaneKilledDuringTraffic: SIGKILL the control plane while
// requests flow through two sidecars: not one request fails (the sidecars
// keep their last good config), and once a new control plane runs on the
// same address the sidecars reconnect and follow Consul again.
func TestControlPlaneKilledDuringTraffic(t *testing.T) {
	f := newFixture(t)
	web, _ := f.pair(t)
	l := startLoad(t, web.upstreamURL())
	l.waitOK(t, 20, 10*time.Second)

	f.cp.Kill()
	l.waitOK(t, outageRequests, 30*time.Second)
	f.startControlPlane(t, launch.PortOf(f.cp.XDSAddr), launch.PortOf(f.cp.AdminAddr))
	l.waitOK(t, 20, 10*time.Second)

	// The sidecars are connected again: a new instance reaches web's.
	f.addMember(t, "api", "api-2")
	waitHosts(t, web, "api", 2, 30*time.Second)
	l.waitOK(t, 20, 10*time.Second)
	l.stop()
	ok, fail, failures := l.snapshot()
	if fail != 0 {
		t.Errorf("%d of %d requests failed across the control plane's death and restart, want 0: %q", fail, ok+fail, failures)
	}
	t.Logf("%d requests, %d failed", ok+fail, fail)
}

// TestConsulRestartedDuringTraffic: stop Consul (a persistent single
// server, so the catalog survives) while requests flow: the control plane
// keeps serving its last snapshot and not one request fails while Consul
// is away; after Consul is back, a new registration flows to the sidecars.
//
// When a Consul agent restarts it restores every check as critical until
// the check runs again ("Default check to critical to avoid placing
// potentially unhealthy services into the active pool", agent/agent.go
// loadChecks in Consul 1.14): for up to one check interval (1 s here)
// Consul itself says the api sidecar is unhealthy, and since only passing
// instances get traffic, requests in that window fail with 503 "no
// healthy upstream". The test bounds that window and its kind of failure.
func TestConsulRestartedDuringTraffic(t *testing.T) {
	f := newFixture(t, consultest.Persistent())
	web, _ := f.pair(t)
	l := startLoad(t, web.upstreamURL())
	l.waitOK(t, 20, 10*time.Second)

	f.consul.Stop()
	l.waitOK(t, outageRequests, 30*time.Second)
	if ok, fail, failures := l.snapshot(); fail != 0 {
		t.Errorf("%d of %d requests failed while Consul was away, want 0: %q", fail, ok+fail, failures)
	}
	f.consul.Restart()
	l.waitOK(t, 20, 15*time.Second)

	f.addMember(t, "api", "api-2")
	waitHosts(t, web, "api", 2, 30*time.Second)
	l.waitOK(t, 20, 10*time.Second)
	l.stop()
	ok, fail, _ := l.snapshot()
	kinds := l.failureKinds()
	// 3 s of traffic at most: the checks' 1 s interval plus Consul's start.
	const maxFail = int(3 * time.Second / loadPace)
	if fail > maxFail {
		t.Errorf("%d of %d requests failed after Consul's restart, want at most %d: %v", fail, ok+fail, maxFail, kinds)
	}
	for k := range kinds {
		if !strings.HasPrefix(k, "503 no healthy upstream") {
			t.Errorf("failure %q (%d times): want only 503 no healthy upstream while Consul reports the restored checks critical", k, kinds[k])
		}
	}
	t.Logf("%d requests, %d failed: %v", ok+fail, fail, kinds)
}

// TestSidecarRestarted: each side's sidecar stopped and started again
// (same proxy ID, same admin port): once it reports ready, traffic flows
// through it again.
func TestSidecarRestarted(t *testing.T) {
	f := newFixture(t)
	web, api := f.pair(t)
	parent := t
	for _, tc := range []struct {
		name string
		m    *member
	}{
		{"server side", api},
		{"client side", web},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := get(t, web.upstreamURL()); code != http.StatusOK {
				t.Fatalf("before the restart: %d %q", code, body)
			}
			if err := tc.m.Sidecar.Stop(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			if code, _ := get(t, web.upstreamURL()); code == http.StatusOK {
				t.Fatalf("a request succeeded with %s stopped: the test does not cover the path", tc.m.ProxyID())
			}
			f.startSidecar(t, parent, tc.m, launch.PortOf(tc.m.Sidecar.AdminAddr))
			// Consul's TCP check must see the server side listening
			// again before the client side gets it back as an endpoint.
			waitHosts(t, web, "api", 1, 30*time.Second)
			l := startLoad(t, web.upstreamURL())
			l.waitOK(t, 50, 30*time.Second)
			l.stop()
			// A few requests may race the endpoint's return; after that
			// none fails.
			ok, fail, failures := l.snapshot()
			t.Logf("after the restart: %d ok, %d failed %q", ok, fail, failures)
			if fail > 5 {
				t.Errorf("%d of %d requests failed after %s came back, want at most 5: %q", fail, ok+fail, tc.m.ProxyID(), failures)
			}
		})
	}
}
