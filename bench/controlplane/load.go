package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
)

// loadWorkers bounds the harness's concurrent requests to Consul.
const loadWorkers = 16

// hotServices is how many services every proxy's first upstream is spread
// over: a change to one of them concerns proxies/hotServices proxies.
const hotServices = 10

// topology is the mesh the harness registers: services svc-00000...,
// three instances each on nodes of 45 registrations; the even ones have a
// sidecar per instance (so services/2*3 sidecars, the first `proxies` of
// which connect). Every sidecar has three upstreams: one hot service (an
// odd one, reached at its own instances, whose checks the check scenario
// fails) and two others spread over the whole catalog. Every 10th service
// has a service-resolver, every 20th a service-router; proxy-defaults
// sets protocol http.
type topology struct {
	services int
	proxies  int
}

func svcName(i int) string          { return fmt.Sprintf("svc-%05d", i) }
func instID(i, k int) string        { return fmt.Sprintf("%s-%d", svcName(i), k) }
func sidecarID(i, k int) string     { return instID(i, k) + "-sidecar-proxy" }
func (t topology) nodeOf(i int) int { return i / 10 }
func nodeName(n int) string         { return fmt.Sprintf("node-%04d", n) }
func nodeAddr(n int) string         { return fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256) }

// hot is the i-th hot service: an odd service (no sidecars).
func hot(j int) int { return 2*j + 1 }

// sidecarCount is how many sidecars are registered.
func (t topology) sidecarCount() int { return t.services / 2 * 3 }

// sidecar is the p-th sidecar registration: service 2*(p/3), instance p%3.
func (t topology) sidecar(p int) (svc, k int) { return 2 * (p / 3), p % 3 }

// upstreams of the p-th sidecar, distinct (Consul refuses duplicates).
func (t topology) upstreams(p int) []int {
	out := []int{hot(p % hotServices)}
	for _, c := range []int{(p*7919 + 104729) % t.services, (p*4099 + 15485863) % t.services} {
		for slices.Contains(out, c) {
			c = (c + 1) % t.services
		}
		out = append(out, c)
	}
	return out
}

// register writes nodes, instances with one passing check each, sidecars
// and config entries, loadWorkers requests at a time. Plain instances and
// their checks go in transactions of 128 operations; sidecars go through
// /v1/catalog/register, because a transaction drops a proxy's upstreams.
func (t topology) register(ctx context.Context, c *api.Client) error {
	var ops api.TxnOps
	nodes := t.nodeOf(t.services-1) + 1
	for n := range nodes {
		ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: nodeName(n), Address: nodeAddr(n)}}})
	}
	if err := runTxns(ctx, c, ops); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	ops = ops[:0]
	for i := range t.services {
		n := t.nodeOf(i)
		for k := range 3 {
			ops = append(ops,
				&api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(n), Service: api.AgentService{
					ID: instID(i, k), Service: svcName(i), Address: nodeAddr(n), Port: 8080 + k}}},
				&api.TxnOp{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: t.check(i, k, api.HealthPassing)}})
		}
	}
	if err := runTxns(ctx, c, ops); err != nil {
		return fmt.Errorf("instances: %w", err)
	}
	g, gctx := newLimitGroup(ctx, loadWorkers)
	for p := range t.sidecarCount() {
		g.Go(func() error {
			_, err := c.Catalog().Register(t.sidecarRegistration(p), (&api.WriteOptions{}).WithContext(gctx))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sidecars: %w", err)
	}
	return t.writeEntries(ctx, c)
}

func (t topology) check(i, k int, status string) api.HealthCheck {
	return api.HealthCheck{Node: nodeName(t.nodeOf(i)), CheckID: "service:" + instID(i, k), Name: "app",
		Status: status, ServiceID: instID(i, k), ServiceName: svcName(i)}
}

func (t topology) sidecarRegistration(p int) *api.CatalogRegistration {
	i, k := t.sidecar(p)
	n := t.nodeOf(i)
	var ups []api.Upstream
	for u, s := range t.upstreams(p) {
		ups = append(ups, api.Upstream{DestinationName: svcName(s), LocalBindPort: 10000 + u})
	}
	return &api.CatalogRegistration{Node: nodeName(n), Address: nodeAddr(n), SkipNodeUpdate: true,
		Service: &api.AgentService{Kind: api.ServiceKindConnectProxy, ID: sidecarID(i, k), Service: svcName(i) + "-sidecar-proxy",
			Address: nodeAddr(n), Port: 21000 + k, Proxy: &api.AgentServiceConnectProxyConfig{
				DestinationServiceName: svcName(i), DestinationServiceID: instID(i, k),
				LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080 + k, Upstreams: ups}}}
}

func (t topology) writeEntries(ctx context.Context, c *api.Client) error {
	entries := []api.ConfigEntry{&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": "http"}}}
	for i := 0; i < t.services; i += 10 {
		entries = append(entries, t.resolver(i, 5*time.Second))
	}
	for i := 0; i < t.services; i += 20 {
		entries = append(entries, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: svcName(i), Routes: []api.ServiceRoute{{
			Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/admin"}},
			Destination: &api.ServiceRouteDestination{RequestTimeout: 2 * time.Second, NumRetries: 2, RetryOnConnectFailure: true},
		}}})
	}
	g, gctx := newLimitGroup(ctx, loadWorkers)
	for _, e := range entries {
		g.Go(func() error {
			ok, _, err := c.ConfigEntries().Set(e, (&api.WriteOptions{}).WithContext(gctx))
			if err == nil && !ok {
				err = fmt.Errorf("not written")
			}
			if err != nil {
				return fmt.Errorf("%s/%s: %w", e.GetKind(), e.GetName(), err)
			}
			return nil
		})
	}
	return g.Wait()
}

func (t topology) resolver(i int, connectTimeout time.Duration) *api.ServiceResolverConfigEntry {
	return &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: svcName(i), ConnectTimeout: connectTimeout}
}

// runTxns applies ops in transactions of 128 (Consul's maximum).
func runTxns(ctx context.Context, c *api.Client, ops api.TxnOps) error {
	const perTxn = 128
	g, gctx := newLimitGroup(ctx, loadWorkers)
	for start := 0; start < len(ops); start += perTxn {
		batch := ops[start:min(start+perTxn, len(ops))]
		g.Go(func() error {
			ok, resp, _, err := c.Txn().Txn(batch, (&api.QueryOptions{}).WithContext(gctx))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("transaction rolled back: %v", resp.Errors)
			}
			return nil
		})
	}
	return g.Wait()
}

// limitGroup runs functions on at most n goroutines at a time; the first
// error cancels its context and is what wait returns.
type limitGroup struct {
	wg     sync.WaitGroup
	sem    chan struct{}
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func newLimitGroup(ctx context.Context, n int) (*limitGroup, context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	return &limitGroup{sem: make(chan struct{}, n), cancel: cancel}, ctx
}

// Go blocks until a slot is free, then runs f on its own goroutine.
func (g *limitGroup) Go(f func() error) {
	g.sem <- struct{}{}
	g.wg.Go(func() {
		defer func() { <-g.sem }()
		if err := f(); err != nil {
			g.once.Do(func() {
				g.err = err
				g.cancel()
			})
		}
	})
}

// Wait waits for every function and returns the first error.
func (g *limitGroup) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
