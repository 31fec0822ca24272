package xds

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/internal/consultest"
	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// e2eBackend is one api instance: answers its name, or 503 while failing.
type e2eBackend struct {
	name    string
	port    int
	hits    atomic.Int64
	failing atomic.Bool
}

func startE2EBackend(t *testing.T, name string) *e2eBackend {
	t.Helper()
	b := &e2eBackend{name: name}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = lis.Addr().(*net.TCPAddr).Port
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		if b.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, b.name)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return b
}

func e2eFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestMeshPolicyEndToEnd: real Consul, the real discovery watcher, this
// package's translation served by go-control-plane over ADS, and the
// sidecar's real data path (xDS client, listener manager, router,
// clusters) in process. Config entries written with Consul's API change
// live traffic as documented: a router path goes to subset v2, a splitter
// sends 10 % to v2, retries on 503 hide a failing instance, a
// PassiveHealthCheck ejects it, and deleting the entries restores the
// default. The time from each write to the changed traffic is logged.
func TestMeshPolicyEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	a := consultest.Start(t)
	c := a.Client
	set := func(e api.ConfigEntry) {
		t.Helper()
		if ok, _, err := c.ConfigEntries().Set(e, nil); err != nil || !ok {
			t.Fatalf("writing %s/%s: ok=%v err=%v", e.GetKind(), e.GetName(), ok, err)
		}
	}
	passing := &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing}

	v1a, v1b, v2 := startE2EBackend(t, "v1a"), startE2EBackend(t, "v1b"), startE2EBackend(t, "v2")
	for i, b := range []*e2eBackend{v1a, v1b, v2} {
		version := "v1"
		if b == v2 {
			version = "v2"
		}
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "api-" + strconv.Itoa(i+1), Name: "api", Address: "127.0.0.1", Port: b.port,
			Meta: map[string]string{"version": version}, Check: passing,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	publicPort, upstreamPort := e2eFreePort(t), e2eFreePort(t)
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Address: "127.0.0.1", Port: e2eFreePort(t), Check: passing,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: "127.0.0.1", Port: publicPort, Check: passing,
			Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: []api.Upstream{{DestinationName: "api", LocalBindPort: upstreamPort}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})

	h := startMeshHarness(ctx, t, c, "web-1-sidecar-proxy", upstreamPort)
	get, count := h.get, h.count
	// until waits for 20 consecutive answers to path for which ok holds
	// and returns how long it took.
	until := func(what, path string, ok func(code int, body string) bool) time.Duration {
		t.Helper()
		start := time.Now()
		streak := 0
		for streak < 20 {
			if ctx.Err() != nil {
				t.Fatalf("%s: not within the deadline (last translation error: %v)", what, h.lastErr.Load())
			}
			if code, body := get(path); ok(code, body) {
				streak++
				continue
			}
			streak = 0
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	// Default chain: every instance takes traffic.
	d0 := until("the default chain", "/", func(code int, _ string) bool { return code == http.StatusOK })
	t.Logf("sidecar serving the default chain after %v", d0)
	if got := count("/", 300); got["v1a"] < 50 || got["v1b"] < 50 || got["v2"] < 50 {
		t.Fatalf("default chain spread %v, want all three instances", got)
	}

	// Router /v2 → subset v2; splitter 90/10 for the rest.
	written := time.Now()
	set(&api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "api", Subsets: map[string]api.ServiceResolverSubset{
		"v1": {Filter: "Service.Meta.version == v1"}, "v2": {Filter: "Service.Meta.version == v2"},
	}})
	set(&api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: []api.ServiceRoute{
		{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v2"}}, Destination: &api.ServiceRouteDestination{ServiceSubset: "v2"}},
		{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/retry"}},
			Destination: &api.ServiceRouteDestination{ServiceSubset: "v1", NumRetries: 3, RetryOnStatusCodes: []uint32{503}}},
	}})
	set(&api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "api", Splits: []api.ServiceSplit{
		{Weight: 90, ServiceSubset: "v1"}, {Weight: 10, ServiceSubset: "v2"},
	}})
	d := until("router /v2 → subset v2", "/v2/x", func(code int, body string) bool { return code == http.StatusOK && body == "v2" })
	t.Logf("router/resolver/splitter written → /v2 served by v2 only after %v (of which %v confirming with 20 consecutive answers)", time.Since(written), d)
	got := count("/", 1000)
	if v2share := got["v2"]; v2share < 60 || v2share > 140 || got["v1a"]+got["v1b"]+v2share != 1000 {
		t.Errorf("split 90/10: %v, want v2 at 10 %% (60..140 of 1000) and no failures", got)
	}

	// PassiveHealthCheck (MaxFailures 1): once the sidecar runs it, v1b
	// failing costs one failed request, then it is ejected. With Envoy's
	// default (5 consecutive 5xx) it would cost five.
	written = time.Now()
	set(&api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "http",
		UpstreamConfig: &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{PassiveHealthCheck: &api.PassiveHealthCheck{
			Interval: time.Second, MaxFailures: 1, MaxEjectionPercent: ptrTo(uint32(100)), BaseEjectionTime: ptrTo(3 * time.Second),
		}}}})
	h.waitApplied(ctx, t, "the PassiveHealthCheck", func(cfg *config.Config) bool {
		cl := cfg.Clusters["v1.api.default.dc1.internal"]
		return cl != nil && cl.OutlierDetection != nil && cl.OutlierDetection.Consecutive5xx == 1
	})
	t.Logf("service-defaults PassiveHealthCheck written → applied by the sidecar after %v", time.Since(written))
	v1b.failing.Store(true)
	// Sequential requests for at most 2 s, inside the 3 s ejection even if
	// the first one failed at once (a loaded machine may manage fewer than
	// the 150).
	got = map[string]int{}
	for n, end := 0, time.Now().Add(2*time.Second); n < 150 && time.Now().Before(end); n++ {
		code, body := get("/")
		if code != http.StatusOK {
			body = fmt.Sprint(code)
		}
		got[body]++
	}
	if got["503"] > 1 || got["v1b"] > 0 {
		t.Errorf("with v1b failing and MaxFailures 1: %v, want at most one 503 before the ejection", got)
	}
	t.Logf("v1b failing: %v (ejected after its first failure)", got)

	// Retries on 503 (/retry: subset v1, three retries, previous_hosts by
	// default): once v1b's ejection ends, its first attempts fail and are
	// retried on v1a, so every request succeeds.
	v1b.failing.Store(false)
	for {
		if _, body := get("/"); body == "v1b" {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("v1b never came back from its ejection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("v1b back from its ejection")
	v1b.failing.Store(true)
	before := v1b.hits.Load()
	got = count("/retry", 200)
	if got["v1a"] != 200 {
		t.Errorf("/retry with v1b failing: %v, want every request answered by v1a", got)
	}
	retried := v1b.hits.Load() - before
	if retried == 0 {
		t.Errorf("v1b was never tried: the retry path was not exercised")
	}
	t.Logf("/retry: %d/200 succeeded; %d attempts on the failing v1b were retried", got["v1a"], retried)
	v1b.failing.Store(false)

	// Deleting the entries restores the default chain: /v2 reaches every
	// instance again.
	written = time.Now()
	for _, kind := range []string{api.ServiceRouter, api.ServiceSplitter, api.ServiceResolver} {
		if _, err := c.ConfigEntries().Delete(kind, "api", nil); err != nil {
			t.Fatal(err)
		}
	}
	for {
		if _, body := get("/v2/x"); body == "v1a" || body == "v1b" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the default chain never came back (last translation error: %v)", h.lastErr.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("entries deleted → /v2 reaches v1 instances again after %v", time.Since(written))
	if got := count("/v2/x", 300); got["v1a"] < 50 || got["v2"] < 50 {
		t.Errorf("default chain after deletion: %v, want /v2 spread over the instances", got)
	}
}

func ptrTo[T any](v T) *T { return &v }

func zaptestLevel() zaptest.LoggerOption { return zaptest.Level(zap.WarnLevel) }
