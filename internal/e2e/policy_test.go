package e2e

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// Config entries as a user writes them for `consul config write`.
const (
	protocolHTTP = `Kind = "proxy-defaults"
Name = "global"
Config {
  protocol = "http"
}
`
	apiResolver = `Kind          = "service-resolver"
Name          = "api"
DefaultSubset = "v1"
Subsets = {
  v1 = { Filter = "Service.Meta.version == v1" }
  v2 = { Filter = "Service.Meta.version == v2" }
}
`
	apiRouter = `Kind = "service-router"
Name = "api"
Routes = [{
  Match       = { HTTP = { PathPrefix = "/v2/" } }
  Destination = { ServiceSubset = "v2" }
}]
`
	apiSplitter = `Kind   = "service-splitter"
Name   = "api"
Splits = [{ Weight = 90, ServiceSubset = "v1" }, { Weight = 10, ServiceSubset = "v2" }]
`
)

// applyWithin bounds the time from a `consul config write` (or delete)
// to the changed traffic: Consul's blocking query, the control plane's
// coalescing and rebuild, the push and the sidecar's apply — well under a
// second on an idle machine, seconds on a loaded one.
const applyWithin = 15 * time.Second

// TestPolicyThroughConsulCLI: config entries written and deleted with
// the real `consul` CLI change live traffic through web's sidecar (the
// control-plane and sidecar binaries, api v1 and v2 behind their own
// sidecars) as the README's "Policy: Consul config entries" documents,
// and the time from each command's return to the first request showing
// the change is logged.
//
//   - service-resolver with subsets v1/v2 (Filter on Service.Meta.version),
//     DefaultSubset v1: all traffic to v1;
//   - service-router PathPrefix /v2/ → subset v2: /v2/… only reaches v2,
//     the rest v1;
//   - service-splitter 90/10 v1/v2: the default route splits within
//     tolerance, the router's subset route still only reaches v2;
//   - deleting the router, then the splitter: every path back to v1;
//     deleting the resolver: both instances again.
//
// No request fails across the changes, and after each one the control
// plane's /status lists no entry error, translation error or NACK. The
// splitter's time includes waiting for a 10 % draw (about ten requests).
func TestPolicyThroughConsulCLI(t *testing.T) {
	f := &fixture{consul: consultest.Start(t), dir: t.TempDir()}
	cli := newConsulCLI(t, f.consul.HTTPAddr, f.dir)
	cli.write(t, "proxy-defaults", protocolHTTP)
	f.startControlPlane(t, 0, 0)
	f.addVersion(t, "api", "api-v1", "v1")
	f.addVersion(t, "api", "api-v2", "v2")
	web := f.addMember(t, "web", "web-1", "api")
	waitHosts(t, web, "api", 2, 30*time.Second)
	p := newProbe(t, web.upstreamURL())
	defer func() {
		if t.Failed() {
			t.Logf("control plane log tail:\n%s", f.cp.LogTail(6000))
		}
	}()

	// Without entries both instances serve: what the entries change is
	// theirs to change.
	if got := p.tally(t, "orders", 40); got["v1"] == 0 || got["v2"] == 0 || got["failed"] != 0 {
		t.Fatalf("without entries: answers %v, want both v1 and v2 and no failure", got)
	}

	// Resolver: "only v1" is told from round robin over two instances by
	// a run of answers (RR alternates; even a random pick makes 30 v1 in
	// a row a 1e-9 chance).
	at := cli.write(t, "api-resolver", apiResolver)
	p.waitFor(t, "resolver (DefaultSubset v1)", at, "orders", "v1", 30, applyWithin)
	checkStatus(t, f.cp, "resolver (DefaultSubset v1)")
	expect(t, "resolver: /v2/orders", p.tally(t, "v2/orders", 20), map[string]int{"v1": 20})

	// Router: the first /v2/ answer from v2 is the change (v1 only before).
	at = cli.write(t, "api-router", apiRouter)
	p.waitFor(t, "router (/v2/ → subset v2)", at, "v2/orders", "v2", 1, applyWithin)
	checkStatus(t, f.cp, "router (/v2/ → subset v2)")
	expect(t, "router: /v2/orders", p.tally(t, "v2/orders", 50), map[string]int{"v2": 50})
	expect(t, "router: /orders", p.tally(t, "orders", 50), map[string]int{"v1": 50})
	expect(t, "router: /v2 (no slash: not the prefix /v2/)", p.tally(t, "v2", 10), map[string]int{"v1": 10})

	// Splitter: the default route now goes through it; the first v2
	// answer on it is the change.
	at = cli.write(t, "api-splitter", apiSplitter)
	p.waitFor(t, "splitter (90/10)", at, "orders", "v2", 1, applyWithin)
	checkStatus(t, f.cp, "splitter (90/10)")
	const n = 400
	got := p.tally(t, "orders", n)
	if got["v1"]+got["v2"] != n || got["v2"] < n*5/100 || got["v2"] > n*15/100 {
		t.Errorf("splitter 90/10: %d requests answered %v, want v2 10 %% ± 5 %% (%d..%d) and v1 the rest", n, got, n*5/100, n*15/100)
	}
	t.Logf("splitter 90/10: %d requests: %v", n, got)
	expect(t, "splitter: /v2/orders (router's subset route)", p.tally(t, "v2/orders", 30), map[string]int{"v2": 30})

	// Deleting the router: /v2/ follows the default route again, the
	// splitter's; the first v1 answer there is the change.
	at = cli.delete(t, "service-router", "api")
	p.waitFor(t, "router deleted", at, "v2/orders", "v1", 1, applyWithin)
	checkStatus(t, f.cp, "router deleted")

	// Deleting the splitter: only v1. No single answer tells that from
	// 90/10, so the moment is when web's sidecar drops the v2 subset
	// cluster (no chain reaches it any more), and traffic confirms it
	// with a run (100 v1 in a row under a 90/10 split: a 3e-5 chance).
	at = cli.delete(t, "service-splitter", "api")
	waitClusterGone(t, web, "splitter deleted", at, "v2.api.", applyWithin)
	p.waitFor(t, "splitter deleted (traffic)", at, "orders", "v1", 100, applyWithin)
	checkStatus(t, f.cp, "splitter deleted")
	expect(t, "router and splitter deleted: /v2/orders", p.tally(t, "v2/orders", 30), map[string]int{"v1": 30})

	// Deleting the resolver: both instances serve again.
	at = cli.delete(t, "service-resolver", "api")
	p.waitFor(t, "resolver deleted", at, "orders", "v2", 1, applyWithin)
	checkStatus(t, f.cp, "resolver deleted")
	if got := p.tally(t, "orders", 40); got["v1"] == 0 || got["v2"] == 0 || got["failed"] != 0 {
		t.Errorf("all entries deleted: answers %v, want both v1 and v2 and no failure", got)
	}

	// Cluster warming: a new subset cluster serves once its endpoints
	// arrived, a removed one drains; no request fails across the changes.
	if len(p.failures) != 0 {
		t.Errorf("%d requests failed across the config changes, want 0: %q", len(p.failures), p.failures)
	}
}

// expect fails the test if the answers counted are not want.
func expect(t *testing.T, what string, got, want map[string]int) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("%s: answers (-want +got):\n%s", what, diff)
	}
}
