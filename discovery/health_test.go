package discovery

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// healthIs returns a condition: every named instance has its health.
func healthIs(want map[string]mesh.Health) func(*mesh.Snapshot) bool {
	return func(s *mesh.Snapshot) bool {
		for id, h := range want {
			found := false
			for _, svc := range s.Services {
				for _, inst := range svc.Instances {
					if inst.ID == id {
						found = inst.Health == h
					}
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}

// TestWatcherFollowsEveryCheckTransition walks service and node checks
// through every status change the model distinguishes, with only the
// non-passing checks watched: warning and critical in every order, passing
// inferred from a check leaving a set, maintenance (Consul's critical
// _service_maintenance:<id> and _node_maintenance checks), a node check
// reaching every instance on its node, and critical checks deregistered.
// The periodic resync is off: every step must come from the watches.
func TestWatcherFollowsEveryCheckTransition(t *testing.T) {
	a := consultest.Start(t)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond, Resync: -1}, zaptest.NewLogger(t))
	agent := a.Client.Agent()
	regs := []*api.AgentServiceRegistration{
		{ID: "pay-1", Name: "pay", Port: 8001, Checks: api.AgentServiceChecks{
			{CheckID: "pay-1-a", TTL: "10m", Status: api.HealthPassing},
			{CheckID: "pay-1-b", TTL: "10m", Status: api.HealthPassing},
		}},
		{ID: "pay-2", Name: "pay", Port: 8002, Check: &api.AgentServiceCheck{CheckID: "pay-2-a", TTL: "10m", Status: api.HealthPassing}},
		{ID: "shop-1", Name: "shop", Port: 8003},
	}
	for _, r := range regs {
		if err := agent.ServiceRegister(r); err != nil {
			t.Fatalf("register %s: %v", r.ID, err)
		}
	}
	if err := agent.CheckRegister(&api.AgentCheckRegistration{ID: "node-disk", Name: "disk",
		AgentServiceCheck: api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	const (
		P = mesh.HealthPassing
		W = mesh.HealthWarning
		C = mesh.HealthCritical
		M = mesh.HealthMaintenance
	)
	all := func(pay1, pay2, shop1 mesh.Health) map[string]mesh.Health {
		return map[string]mesh.Health{"pay-1": pay1, "pay-2": pay2, "shop-1": shop1}
	}
	waitSnapshot(t, w, 20*time.Second, "all passing", healthIs(all(P, P, P)))
	ttl := func(id, status string) func() error {
		return func() error { return agent.UpdateTTL(id, "", status) }
	}
	steps := []struct {
		name string
		do   func() error
		want map[string]mesh.Health
	}{
		{"passing → warning", ttl("pay-1-a", api.HealthWarning), all(W, P, P)},
		{"a second check critical beats warning", ttl("pay-1-b", api.HealthCritical), all(C, P, P)},
		{"warning → critical", ttl("pay-1-a", api.HealthCritical), all(C, P, P)},
		{"critical → passing, the other still critical", ttl("pay-1-b", api.HealthPassing), all(C, P, P)},
		{"critical → warning", ttl("pay-1-a", api.HealthWarning), all(W, P, P)},
		{"warning → passing", ttl("pay-1-a", api.HealthPassing), all(P, P, P)},
		{"passing → critical", ttl("pay-2-a", api.HealthCritical), all(P, C, P)},
		{"critical → passing", ttl("pay-2-a", api.HealthPassing), all(P, P, P)},
		{"service maintenance", func() error { return agent.EnableServiceMaintenance("pay-2", "deploy") }, all(P, M, P)},
		{"service maintenance off", func() error { return agent.DisableServiceMaintenance("pay-2") }, all(P, P, P)},
		{"node check critical", ttl("node-disk", api.HealthCritical), all(C, C, C)},
		{"node maintenance beats critical", func() error { return agent.EnableNodeMaintenance("reboot") }, all(M, M, M)},
		{"node maintenance off", func() error { return agent.DisableNodeMaintenance() }, all(C, C, C)},
		{"node check warning", ttl("node-disk", api.HealthWarning), all(W, W, W)},
		{"node check critical again", ttl("node-disk", api.HealthCritical), all(C, C, C)},
		{"critical node check deregistered", func() error { return agent.CheckDeregister("node-disk") }, all(P, P, P)},
		{"service check critical again", ttl("pay-2-a", api.HealthCritical), all(P, C, P)},
		{"critical service check deregistered", func() error { return agent.CheckDeregister("pay-2-a") }, all(P, P, P)},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		waitSnapshot(t, w, 10*time.Second, st.name, healthIs(st.want))
	}
}

// gate holds the requests of one path while closed, and tells the test
// the WaitIndex of each one it holds.
type gate struct {
	next http.RoundTripper
	path string
	held chan uint64   // each held request's WaitIndex
	pass chan struct{} // lets one held request through

	mu     sync.Mutex
	closed bool
	opened chan struct{}
}

func newGate(next http.RoundTripper, path string) *gate {
	return &gate{next: next, path: path, held: make(chan uint64), pass: make(chan struct{})}
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed, g.opened = true, make(chan struct{})
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		g.closed = false
		close(g.opened)
	}
}

func (g *gate) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path == g.path {
		g.mu.Lock()
		closed, opened := g.closed, g.opened
		g.mu.Unlock()
		if closed {
			index, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
			select {
			case g.held <- index:
				select {
				case <-g.pass:
				case <-opened:
				case <-r.Context().Done():
					return nil, r.Context().Err()
				}
			case <-opened:
			case <-r.Context().Done():
				return nil, r.Context().Err()
			}
		}
	}
	return g.next.RoundTrip(r)
}

// holdAfter lets the gated watch's queries through until it holds one
// whose WaitIndex is at least index: the watch has then seen the state at
// index and has no query at Consul.
func (g *gate) holdAfter(t *testing.T, index uint64) {
	t.Helper()
	for {
		select {
		case got := <-g.held:
			if got >= index {
				return
			}
			g.pass <- struct{}{}
		case <-time.After(10 * time.Second):
			t.Fatalf("the gated watch sent no query with an index ≥ %d within 10s", index)
		}
	}
}

// testClient is a Consul client for a over rt; no keep-alives, so no idle
// connection outlives the test (goleak).
func testClient(t *testing.T, a *consultest.Agent, wrap func(http.RoundTripper) http.RoundTripper) *api.Client {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.HTTPAddr
	cfg.HttpClient = &http.Client{Transport: wrap(transport)}
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestWatcherSeesTransitionBetweenTwoPolls: a check goes passing →
// critical → passing while the critical watch has no query at Consul, and
// a fetch (caused by a tag change) lands in between and shows "critical".
// The critical watch's responses before and after are the same, so no
// diff names the service: the fetch must be verified against the next
// response, or the snapshot keeps "critical" for good.
func TestWatcherSeesTransitionBetweenTwoPolls(t *testing.T) {
	a := consultest.Start(t)
	var g *gate
	client := testClient(t, a, func(next http.RoundTripper) http.RoundTripper {
		g = newGate(next, "/v1/health/state/critical")
		return g
	})
	defer g.open() // before the watcher stops (cleanups run after defers)
	log, logs := observedLogger(t, zap.DebugLevel)
	w := startWatcher(t, client, Options{Coalesce: 50 * time.Millisecond, Resync: -1}, log)
	agent := a.Client.Agent()
	for _, r := range []*api.AgentServiceRegistration{
		{ID: "web-1", Name: "web", Port: 8001, Tags: []string{"v1"}, Check: &api.AgentServiceCheck{CheckID: "web-1-a", TTL: "10m", Status: api.HealthPassing}},
		{ID: "web-2", Name: "web", Port: 8002, Tags: []string{"v1"}},
		{ID: "other-1", Name: "other", Port: 8003, Check: &api.AgentServiceCheck{CheckID: "other-1-a", TTL: "10m", Status: api.HealthPassing}},
	} {
		if err := agent.ServiceRegister(r); err != nil {
			t.Fatal(err)
		}
	}
	waitSnapshot(t, w, 20*time.Second, "all passing", healthIs(map[string]mesh.Health{
		"web-1": mesh.HealthPassing, "web-2": mesh.HealthPassing, "other-1": mesh.HealthPassing}))

	// Hold the critical watch between two queries: close the gate, let
	// the query at Consul return (other-1 turns critical), and wait until
	// the next one is held.
	g.close()
	if err := agent.UpdateTTL("other-1-a", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	var changed uint64
	waitUntil(t, 10*time.Second, "other-1 critical in the catalog", func() bool {
		c := catalogCheck(a, "other", "other-1-a")
		changed = c.ModifyIndex
		return c.Status == api.HealthCritical
	})
	g.holdAfter(t, changed)
	waitSnapshot(t, w, 10*time.Second, "other-1 critical", healthIs(map[string]mesh.Health{"other-1": mesh.HealthCritical}))

	// web-1 turns critical; a tag change on web-2 makes the watcher fetch
	// web, which shows web-1 critical.
	if err := agent.UpdateTTL("web-1-a", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "web-1 critical in the catalog", func() bool { return catalogStatus(a, "web", "web-1-a") == api.HealthCritical })
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "web-2", Name: "web", Port: 8002, Tags: []string{"v1", "canary"}}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 10*time.Second, "web-1 critical (fetched for web-2's tags)", healthIs(map[string]mesh.Health{"web-1": mesh.HealthCritical}))

	// Back to passing before the critical watch asks again.
	if err := agent.UpdateTTL("web-1-a", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "web-1 passing in the catalog", func() bool { return catalogStatus(a, "web", "web-1-a") == api.HealthPassing })
	verified := logs.FilterMessage(msgVerifyRefetch).Len()
	g.open()
	waitSnapshot(t, w, 10*time.Second, "web-1 passing again", healthIs(map[string]mesh.Health{"web-1": mesh.HealthPassing}))
	if logs.FilterMessage(msgVerifyRefetch).Len() == verified {
		t.Errorf("web-1 passing again without a verification refetch: the test no longer exercises the race")
	}
}

func catalogStatus(a *consultest.Agent, service, checkID string) string {
	return catalogCheck(a, service, checkID).Status
}

// catalogCheck is the check as the catalog has it (zero if it has not).
func catalogCheck(a *consultest.Agent, service, checkID string) api.HealthCheck {
	checks, _, err := a.Client.Health().Checks(service, nil)
	if err != nil {
		return api.HealthCheck{}
	}
	for _, c := range checks {
		if c.CheckID == checkID {
			return *c
		}
	}
	return api.HealthCheck{}
}

// replayer answers one request of a path with the last response it let
// through for that path, once armed: a server lagging behind.
type replayer struct {
	next http.RoundTripper
	path string

	mu       sync.Mutex
	armed    bool
	last     []byte
	header   http.Header
	replayed atomic.Int32
}

func (p *replayer) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = true
}

func (p *replayer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Path != p.path {
		return p.next.RoundTrip(r)
	}
	p.mu.Lock()
	if p.armed && p.last != nil {
		p.armed = false
		body, header := p.last, p.header.Clone()
		p.mu.Unlock()
		p.replayed.Add(1)
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: header, Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
	}
	p.mu.Unlock()
	resp, err := p.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.last, p.header = body, resp.Header.Clone()
	p.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// TestWatcherRefetchesStaleFetch: the fetch that a check change causes
// comes back from a lagging server (an older response, with its older
// X-Consul-Index). No later response of the checks watch will name the
// service again, so the fetch must be checked against the state that
// named it, and refetched.
func TestWatcherRefetchesStaleFetch(t *testing.T) {
	a := consultest.Start(t)
	var p *replayer
	client := testClient(t, a, func(next http.RoundTripper) http.RoundTripper {
		p = &replayer{next: next, path: "/v1/health/service/web"}
		return p
	})
	w := startWatcher(t, client, Options{Coalesce: 50 * time.Millisecond, Resync: -1}, zaptest.NewLogger(t))
	agent := a.Client.Agent()
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8001,
		Check: &api.AgentServiceCheck{CheckID: "web-1-a", TTL: "10m", Status: api.HealthPassing}}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 20*time.Second, "web-1 passing", healthIs(map[string]mesh.Health{"web-1": mesh.HealthPassing}))
	p.arm()
	if err := agent.UpdateTTL("web-1-a", "", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 10*time.Second, "web-1 critical despite a stale fetch", healthIs(map[string]mesh.Health{"web-1": mesh.HealthCritical}))
	if p.replayed.Load() != 1 {
		t.Errorf("%d stale responses served, want 1: the test no longer exercises a stale fetch", p.replayed.Load())
	}
}

// serviceIndex is the ModifyIndex of a service's instance in the catalog
// (0 until it is there).
func serviceIndex(a *consultest.Agent, service, id string) uint64 {
	entries, _, err := a.Client.Catalog().Service(service, "", nil)
	if err != nil {
		return 0
	}
	for _, e := range entries {
		if e.ServiceID == id {
			return e.ModifyIndex
		}
	}
	return 0
}

// TestWatcherSeesMaskedRegistration: an instance added under an existing
// name with a passing check is named by nothing the watches diff, and the
// catalog response that covers it may report another write's index only
// (here a new name, whose fetch explains that index), or the instance may
// come in one transaction with another service. The probe after each
// catalog move must find it; the periodic resync is off.
func TestWatcherSeesMaskedRegistration(t *testing.T) {
	passing := func(id string) *api.AgentServiceCheck {
		return &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "10m", Status: api.HealthPassing}
	}
	// behindAnotherWrite holds the catalog watch while pay-2 and then
	// late-1 register, so one catalog response covers both writes and
	// reports only late's index; the watcher must still see pay-2. pay's
	// instances carry payCheck's check (nil: none).
	behindAnotherWrite := func(t *testing.T, payCheck func(id string) *api.AgentServiceCheck) {
		a := consultest.Start(t)
		var g *gate
		client := testClient(t, a, func(next http.RoundTripper) http.RoundTripper {
			g = newGate(next, "/v1/catalog/services")
			return g
		})
		defer g.open()
		w := startWatcher(t, client, Options{Coalesce: 50 * time.Millisecond, Resync: -1}, zaptest.NewLogger(t))
		agent := a.Client.Agent()
		if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "pay-1", Name: "pay", Port: 8001, Check: payCheck("pay-1")}); err != nil {
			t.Fatal(err)
		}
		waitSnapshot(t, w, 20*time.Second, "pay-1", healthIs(map[string]mesh.Health{"pay-1": mesh.HealthPassing}))

		// Hold the catalog watch between two queries.
		g.close()
		if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "warmup-1", Name: "warmup", Port: 8002}); err != nil {
			t.Fatal(err)
		}
		var warmup uint64
		waitUntil(t, 10*time.Second, "warmup in the catalog", func() bool {
			warmup = serviceIndex(a, "warmup", "warmup-1")
			return warmup != 0
		})
		g.holdAfter(t, warmup)
		if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "pay-2", Name: "pay", Port: 8003, Check: payCheck("pay-2")}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "pay-2 in the catalog", func() bool { return serviceIndex(a, "pay", "pay-2") != 0 })
		if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "late-1", Name: "late", Port: 8004, Check: passing("late-1")}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "late in the catalog", func() bool { return serviceIndex(a, "late", "late-1") != 0 })
		g.open()
		waitSnapshot(t, w, 10*time.Second, "pay-2 and late-1", healthIs(map[string]mesh.Health{
			"pay-1": mesh.HealthPassing, "pay-2": mesh.HealthPassing, "late-1": mesh.HealthPassing}))
	}
	t.Run("two writes in one catalog response", func(t *testing.T) { behindAnotherWrite(t, passing) })
	// The probe of every check cannot see a check-less pay-2, and late-1's
	// fetch explains the catalog move that also covers pay-2's write:
	// services with check-less instances are refetched on every probe.
	t.Run("a check-less instance behind another write", func(t *testing.T) {
		behindAnotherWrite(t, func(string) *api.AgentServiceCheck { return nil })
	})
	t.Run("one transaction", func(t *testing.T) {
		a := consultest.Start(t)
		w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond, Resync: -1}, zaptest.NewLogger(t))
		// Another node: the agent's anti-entropy removes what it did not
		// register from its own.
		node := api.Node{Node: "ext", Address: "10.0.0.9"}
		check := func(id, name string) *api.TxnOp {
			return &api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
				Node: node.Node, CheckID: id + "-ttl", Name: "app", Status: api.HealthPassing, ServiceID: id, ServiceName: name}}}
		}
		service := func(id, name string) *api.TxnOp {
			return &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node.Node, Service: api.AgentService{ID: id, Service: name, Port: 80}}}
		}
		txn := func(ops ...*api.TxnOp) {
			t.Helper()
			ok, resp, _, err := a.Client.Txn().Txn(ops, nil)
			if err != nil || !ok {
				t.Fatalf("txn: %v %v", err, resp)
			}
		}
		txn(&api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: node}}, service("pay-1", "pay"), check("pay-1", "pay"))
		waitSnapshot(t, w, 20*time.Second, "pay-1", healthIs(map[string]mesh.Health{"pay-1": mesh.HealthPassing}))
		txn(service("pay-2", "pay"), check("pay-2", "pay"), service("new-1", "new"), check("new-1", "new"))
		waitSnapshot(t, w, 10*time.Second, "pay-2 and new-1", healthIs(map[string]mesh.Health{
			"pay-1": mesh.HealthPassing, "pay-2": mesh.HealthPassing, "new-1": mesh.HealthPassing}))
	})
}
