// Package dns gives STRICT_DNS clusters their hosts: every address each
// endpoint's name resolves to is a host (Envoy's strict DNS service
// discovery), resolved before a configuration is applied and again every
// dns_refresh_rate (5 s by default), and the configuration is re-applied
// when an answer changes.
//
// Concurrency contract: Apply is called by the xDS client (one goroutine);
// Run refreshes in its own goroutine until its context ends. Both apply
// through one mutex, so the listener manager sees one configuration at a
// time, and the last configuration given to Apply is the one refreshed.
// A failed lookup keeps the last answer for that name (Envoy keeps its
// hosts when DNS fails); a name never resolved has no host (503 UH).
package dns

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// LookupFunc resolves host on network ("ip", "ip4" or "ip6").
type LookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

// lookupTimeout bounds one resolution (Envoy's dns_resolution_timeout is
// 5 s by default).
const lookupTimeout = 5 * time.Second

// Resolver expands STRICT_DNS clusters before handing configurations on.
type Resolver struct {
	log    *zap.Logger
	apply  func(context.Context, *config.Config) error
	lookup LookupFunc

	mu  sync.Mutex
	cur *config.Config
	// names are cur's STRICT_DNS names (computed once per Apply: a sidecar
	// with 10,000 EDS clusters and no DNS cluster refreshes nothing).
	names   map[nameKey]*config.Cluster
	answers map[nameKey][]netip.Addr
	due     map[nameKey]time.Time
}

type nameKey struct{ network, host string }

// New returns a Resolver that hands expanded configurations to apply.
// lookup nil means the system resolver.
func New(log *zap.Logger, apply func(context.Context, *config.Config) error, lookup LookupFunc) *Resolver {
	if lookup == nil {
		lookup = net.DefaultResolver.LookupNetIP
	}
	return &Resolver{log: log, apply: apply, lookup: lookup, answers: map[nameKey][]netip.Addr{}, due: map[nameKey]time.Time{}}
}

// Apply resolves the names of cfg's STRICT_DNS clusters that have no
// answer yet, then applies cfg with those clusters' endpoints expanded.
func (r *Resolver) Apply(ctx context.Context, cfg *config.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur = cfg
	r.names = names(cfg)
	now := time.Now()
	for k, c := range r.names {
		if _, ok := r.answers[k]; !ok {
			r.resolve(ctx, k, c)
		}
		if _, ok := r.due[k]; !ok {
			r.due[k] = now.Add(c.DNSRefreshRate)
		}
	}
	r.forgetUnused()
	return r.apply(ctx, r.expand(cfg))
}

// Expand is cfg as the listeners run it: its STRICT_DNS clusters with a
// host per resolved address (for /clusters). cfg itself when it has none.
func (r *Resolver) Expand(cfg *config.Config) *config.Config {
	if cfg == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cfg != r.cur {
		// Not the configuration being run (a race with Apply): as given.
		return cfg
	}
	return r.expand(cfg)
}

// Run re-resolves every name when its refresh is due and re-applies the
// current configuration when an answer changed, until ctx ends.
func (r *Resolver) Run(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(r.refresh(ctx))
	}
}

// refresh resolves what is due and returns how long to wait for the next.
func (r *Resolver) refresh(ctx context.Context) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	next := time.Second
	if r.cur == nil {
		return next
	}
	now := time.Now()
	changed := false
	for k, c := range r.names {
		due, ok := r.due[k]
		if ok && due.After(now) {
			next = min(next, due.Sub(now))
			continue
		}
		if r.resolve(ctx, k, c) {
			changed = true
		}
		r.due[k] = now.Add(c.DNSRefreshRate)
		next = min(next, c.DNSRefreshRate)
	}
	if changed {
		if err := r.apply(ctx, r.expand(r.cur)); err != nil {
			r.log.Warn("re-applying the configuration after a DNS change failed", zap.Error(err))
		}
	}
	return max(next, 10*time.Millisecond)
}

// resolve looks k up and reports whether its answer changed. Called with
// r.mu held.
func (r *Resolver) resolve(ctx context.Context, k nameKey, c *config.Cluster) bool {
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := r.lookup(lctx, k.network, k.host)
	if err != nil || len(addrs) == 0 {
		if err == nil {
			err = fmt.Errorf("no address")
		}
		r.log.Warn("DNS lookup failed; keeping the last answer", zap.String("cluster", c.Name),
			zap.String("name", k.host), zap.Int("kept", len(r.answers[k])), zap.Error(err))
		return false
	}
	addrs = slices.Clone(addrs)
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
	addrs = slices.Compact(addrs)
	old, had := r.answers[k]
	r.answers[k] = addrs
	if had && slices.Equal(old, addrs) {
		return false
	}
	r.log.Info("DNS answer", zap.String("cluster", c.Name), zap.String("name", k.host), zap.Stringers("addresses", addrs))
	return true
}

func (r *Resolver) forgetUnused() {
	for k := range r.answers {
		if _, ok := r.names[k]; !ok {
			delete(r.answers, k)
			delete(r.due, k)
		}
	}
}

// expand is cfg with every STRICT_DNS cluster's endpoints replaced by one
// endpoint per resolved address (same weight, health, priority and
// locality). cfg is not modified.
func (r *Resolver) expand(cfg *config.Config) *config.Config {
	if len(r.names) == 0 {
		return cfg
	}
	out := *cfg
	out.Clusters = maps.Clone(cfg.Clusters)
	for name, c := range cfg.Clusters {
		if !c.StrictDNS {
			continue
		}
		ec := *c
		ec.Endpoints = nil
		for _, ep := range c.Endpoints {
			host, port, err := net.SplitHostPort(ep.Address)
			if err != nil {
				continue
			}
			for _, a := range r.answers[nameKey{lookupNetwork(c), host}] {
				e := ep
				e.Address = net.JoinHostPort(a.String(), port)
				ec.Endpoints = append(ec.Endpoints, e)
			}
		}
		out.Clusters[name] = &ec
	}
	return &out
}

// names lists the names of cfg's STRICT_DNS clusters, each with a cluster
// that uses it (for its refresh rate and the logs).
func names(cfg *config.Config) map[nameKey]*config.Cluster {
	out := map[nameKey]*config.Cluster{}
	for _, c := range cfg.Clusters {
		if !c.StrictDNS {
			continue
		}
		for _, ep := range c.Endpoints {
			if host, _, err := net.SplitHostPort(ep.Address); err == nil {
				out[nameKey{lookupNetwork(c), host}] = c
			}
		}
	}
	return out
}

// lookupNetwork maps the cluster's dial network to the lookup's.
func lookupNetwork(c *config.Cluster) string {
	switch c.DialNetwork {
	case "tcp4":
		return "ip4"
	case "tcp6":
		return "ip6"
	}
	return "ip"
}
