package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

// TestHTTPThroughTwoSidecars: a request to web's outbound listener for
// api goes web's sidecar → api's sidecar (public listener) → api's app,
// and both sidecars log it, naming the listener and the upstream host.
func TestHTTPThroughTwoSidecars(t *testing.T) {
	f := newFixture(t)
	web, api := f.pair(t)

	const n = 20
	for i := range n {
		code, body := get(t, web.upstreamURL()+"orders")
		if code != http.StatusOK || body != "api-1" {
			t.Fatalf("request %d: %d %q, want 200 \"api-1\"", i, code, body)
		}
	}
	if got := api.App.Requests(); got != n {
		t.Errorf("api-1's app answered %d requests, want %d", got, n)
	}

	apiSidecar := launch.Addr(api.SidecarPort)
	for _, tc := range []struct {
		name     string
		m        *member
		listener string
		host     string
	}{
		{"client side", web, "upstream:api", apiSidecar},
		{"server side", api, "public_listener", launch.Addr(api.AppPort)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := waitAccessLines(t, tc.m, tc.listener, n, 5*time.Second)
			for _, e := range got {
				if e.Status != http.StatusOK || e.UpstreamHost != tc.host || e.Path != "/orders" {
					t.Errorf("access line %+v, want status 200, upstream host %s, path /orders", e, tc.host)
				}
			}
		})
	}
}

// waitAccessLines waits until m's sidecar logged want lines for listener.
func waitAccessLines(t *testing.T, m *member, listener string, want int, within time.Duration) []launch.AccessEntry {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		all, err := launch.ReadAccessLog(m.Sidecar.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		var got []launch.AccessEntry
		for _, e := range all {
			if e.Listener == listener {
				got = append(got, e)
			}
		}
		if len(got) >= want {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s logged %d lines for %s within %s, want %d\n%s", m.ProxyID(), len(got), listener, within, want, m.Sidecar.LogTail(2000))
		}
		<-tick.C
	}
}
