package dns

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeDNS answers from a table the test changes (a unit test's stand-in
// for a DNS server).
type fakeDNS struct {
	mu       sync.Mutex
	answers  map[string][]string // "network host" → addresses
	fail     bool
	networks []string
}

func (f *fakeDNS) set(network, host string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answers[network+" "+host] = addrs
}

func (f *fakeDNS) lookup(_ context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networks = append(f.networks, network)
	if f.fail {
		return nil, errors.New("SERVFAIL")
	}
	var out []netip.Addr
	for _, a := range f.answers[network+" "+host] {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

// applied records what the resolver applied.
type applied struct {
	mu   sync.Mutex
	cfgs []*config.Config
	ch   chan struct{}
}

func (a *applied) apply(_ context.Context, cfg *config.Config) error {
	a.mu.Lock()
	a.cfgs = append(a.cfgs, cfg)
	a.mu.Unlock()
	select {
	case a.ch <- struct{}{}:
	default:
	}
	return nil
}

func (a *applied) endpoints(cluster string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cfgs) == 0 {
		return nil
	}
	var out []string
	for _, e := range a.cfgs[len(a.cfgs)-1].Clusters[cluster].Endpoints {
		out = append(out, e.Address)
	}
	return out
}

func (a *applied) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.cfgs)
}

func strictCluster(refresh time.Duration, network string, addrs ...string) *config.Config {
	c := &config.Cluster{Name: "web", StrictDNS: true, DNSRefreshRate: refresh, DialNetwork: network}
	for _, a := range addrs {
		c.Endpoints = append(c.Endpoints, config.Endpoint{Address: a, Weight: 3, Priority: 1})
	}
	return &config.Config{Clusters: map[string]*config.Cluster{
		"web":    c,
		"static": {Name: "static", Endpoints: []config.Endpoint{{Address: "10.9.9.9:80", Weight: 1}}},
	}}
}

// TestStrictDNS: every address of every name is a host (keeping the
// endpoint's weight and priority), refreshed at dns_refresh_rate; a
// changed answer is applied, a failed lookup keeps the last answer, and
// V4_ONLY asks for IPv4 only. The configuration given is not modified.
func TestStrictDNS(t *testing.T) {
	dns := &fakeDNS{answers: map[string][]string{}}
	dns.set("ip4", "web.example", "10.0.0.2", "10.0.0.1")
	dns.set("ip4", "web2.example", "10.0.0.3")
	got := &applied{ch: make(chan struct{}, 1)}
	r := New(zap.NewNop(), got.apply, dns.lookup)
	cfg := strictCluster(50*time.Millisecond, "tcp4", "web.example:80", "web2.example:81")
	if err := r.Apply(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:81"}; !slices.Equal(got.endpoints("web"), want) {
		t.Fatalf("endpoints %v, want %v", got.endpoints("web"), want)
	}
	if e := got.cfgs[0].Clusters["web"].Endpoints[0]; e.Weight != 3 || e.Priority != 1 {
		t.Errorf("expanded endpoint %+v lost its weight or priority", e)
	}
	if cfg.Clusters["web"].Endpoints[0].Address != "web.example:80" {
		t.Error("Apply modified the configuration it was given")
	}
	if got.endpoints("static")[0] != "10.9.9.9:80" {
		t.Error("a STATIC cluster was changed")
	}
	if e := r.Expand(cfg).Clusters["web"].Endpoints; len(e) != 3 || e[0].Address != "10.0.0.1:80" {
		t.Errorf("Expand = %+v, want the resolved hosts", e)
	}
	if plain := (&config.Config{}); r.Expand(plain) != plain {
		t.Error("Expand copied a config without STRICT_DNS clusters")
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	dns.set("ip4", "web.example", "10.0.0.4")
	waitFor(t, got, "the new answer applied", func() bool {
		return slices.Equal(got.endpoints("web"), []string{"10.0.0.4:80", "10.0.0.3:81"})
	})

	dns.mu.Lock()
	dns.fail = true
	dns.mu.Unlock()
	n := got.count()
	deadline := time.Now().Add(300 * time.Millisecond) // six refresh periods
	for time.Now().Before(deadline) {
		select {
		case <-got.ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got.count() != n || !slices.Equal(got.endpoints("web"), []string{"10.0.0.4:80", "10.0.0.3:81"}) {
		t.Errorf("after failed lookups: %d applies (was %d), endpoints %v; want the last answer kept", got.count(), n, got.endpoints("web"))
	}
	dns.mu.Lock()
	defer dns.mu.Unlock()
	for _, nw := range dns.networks {
		if nw != "ip4" {
			t.Fatalf("looked up on %q for a V4_ONLY cluster", nw)
		}
	}
}

func waitFor(t *testing.T, got *applied, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-got.ch:
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
