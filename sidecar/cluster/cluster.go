package cluster

import (
	"reflect"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Cluster is one cluster of a snapshot: its config, its picker over the
// available hosts, and its live state. Immutable apart from the atomics in
// its live state.
type Cluster struct {
	cfg    *config.Cluster
	hosts  []*Host // index-aligned with cfg.Endpoints
	picked []bool  // whether hosts[i] is in the load-balancing set
	picker Picker
	state  *state
}

// state is a cluster's live state, carried across config changes.
type state struct {
	active atomic.Int64 // in-flight requests (max_requests breaker)
	hosts  map[string]*Host
}

// Name is the cluster name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Config is the cluster's configuration.
func (c *Cluster) Config() *config.Cluster { return c.cfg }

// Pick chooses a host, or nil when the cluster has none available.
func (c *Cluster) Pick(hash uint64, hasHash bool) *Host { return c.picker.Pick(hash, hasHash) }

// Acquire reserves one request under the cluster's max_requests circuit
// breaker; false means overflow (Envoy response flag UO). Release must
// follow a successful Acquire.
func (c *Cluster) Acquire() bool {
	limit := int64(c.cfg.CircuitBreakers.MaxRequests)
	if limit == 0 {
		limit = 1024 // Envoy's default threshold
	}
	if c.state.active.Add(1) > limit {
		c.state.active.Add(-1)
		return false
	}
	return true
}

// Release ends a request reserved by Acquire.
func (c *Cluster) Release() { c.state.active.Add(-1) }

// Snapshot is an immutable set of clusters by name.
type Snapshot map[string]*Cluster

// Set owns every cluster's live state. One writer (see the package doc).
type Set struct {
	log     *zap.Logger
	cur     atomic.Pointer[Snapshot]
	retired []*Host // hosts dropped by an update, closed again on Close
}

// NewSet returns an empty set.
func NewSet(log *zap.Logger) *Set {
	s := &Set{log: log}
	s.cur.Store(&Snapshot{})
	return s
}

// Snapshot returns the current snapshot.
func (s *Set) Snapshot() Snapshot { return *s.cur.Load() }

// Update builds the snapshot for cfgs, reusing every unchanged cluster and
// the live state of changed ones, and publishes it. Hosts no longer used
// have their idle connections closed; requests in flight on them finish.
func (s *Set) Update(cfgs map[string]*config.Cluster) Snapshot {
	old := *s.cur.Load()
	next := make(Snapshot, len(cfgs))
	for name, cfg := range cfgs {
		prev := old[name]
		if prev != nil && (prev.cfg == cfg || reflect.DeepEqual(prev.cfg, cfg)) {
			next[name] = prev
			continue
		}
		next[name] = s.build(cfg, prev)
	}
	// Close what the new snapshot no longer reaches.
	for name, prev := range old {
		kept := map[*Host]bool{}
		if c := next[name]; c != nil {
			for _, h := range c.hosts {
				kept[h] = true
			}
		}
		for _, h := range prev.hosts {
			if !kept[h] {
				s.retired = append(s.retired, h)
			}
		}
	}
	s.cur.Store(&next)
	s.pruneRetired()
	return next
}

// pruneRetired closes the idle connections of hosts no snapshot uses and
// forgets those with nothing left open, so endpoint churn does not
// accumulate pools. The others are retried at the next Update and at Close
// (their idle connections also expire after idleConnTimeout).
func (s *Set) pruneRetired() {
	keep := s.retired[:0]
	for _, h := range s.retired {
		h.closeIdle()
		if h.active.Load() > 0 || h.connections.Load() > 0 {
			keep = append(keep, h)
		}
	}
	clear(s.retired[len(keep):])
	s.retired = keep
}

func (s *Set) build(cfg *config.Cluster, prev *Cluster) *Cluster {
	// Requests started on prev release on prev.state: the state object
	// itself is carried over so the in-flight count stays exact.
	st := &state{hosts: map[string]*Host{}}
	if prev != nil {
		st = prev.state
	}
	c := &Cluster{cfg: cfg, state: st}
	hosts := map[string]*Host{}
	for _, ep := range cfg.Endpoints {
		h := hosts[ep.Address]
		if h == nil {
			h = st.hosts[ep.Address]
			if h == nil || h.protocol != cfg.Protocol || h.timeout != connectTimeout(cfg) {
				h = newHost(ep.Address, cfg)
			}
			hosts[ep.Address] = h
		}
		c.hosts = append(c.hosts, h)
	}
	// Single writer: replacing the map is safe, readers use c.hosts.
	st.hosts = hosts
	c.picked, c.picker = buildPicker(cfg, c.hosts)
	s.log.Debug("cluster built", zap.String("cluster", cfg.Name), zap.Int("endpoints", len(c.hosts)))
	return c
}

func connectTimeout(cfg *config.Cluster) time.Duration {
	if cfg.ConnectTimeout == 0 {
		return defaultConnectTimeout
	}
	return cfg.ConnectTimeout
}

// Close closes every pool's idle connections. Call it after the listeners
// drained; the set must not be used afterwards.
func (s *Set) Close() {
	for _, c := range *s.cur.Load() {
		for _, h := range c.hosts {
			h.closeIdle()
		}
	}
	for _, h := range s.retired {
		h.closeIdle()
	}
	s.retired = nil
}

// HealthName is Envoy's name for an EDS health status.
func HealthName(h config.HealthStatus) string {
	switch h {
	case config.HealthHealthy:
		return "HEALTHY"
	case config.HealthUnhealthy:
		return "UNHEALTHY"
	case config.HealthDraining:
		return "DRAINING"
	case config.HealthTimeout:
		return "TIMEOUT"
	case config.HealthDegraded:
		return "DEGRADED"
	}
	return "UNKNOWN"
}

// HostStatus is one host's state for the admin /clusters endpoint.
type HostStatus struct {
	Cluster  string
	Address  string
	Weight   uint32
	Priority uint32
	Health   config.HealthStatus
	// Available says the load balancer may pick the host (healthy, or
	// chosen by the panic threshold).
	Available         bool
	ActiveRequests    int64
	TotalRequests     uint64
	ConnectFailures   uint64
	ActiveConnections int64
}

// Status returns every host of every cluster, sorted by cluster and
// address. Safe from any goroutine.
func (s *Set) Status() []HostStatus {
	var out []HostStatus
	for _, c := range *s.cur.Load() {
		for i, h := range c.hosts {
			ep := c.cfg.Endpoints[i]
			out = append(out, HostStatus{
				Cluster: c.cfg.Name, Address: h.Address, Weight: ep.Weight, Priority: ep.Priority,
				Health: ep.Health, Available: c.picked[i],
				ActiveRequests: h.active.Load(), TotalRequests: h.total.Load(),
				ConnectFailures: h.connFail.Load(), ActiveConnections: h.connections.Load(),
			})
		}
	}
	slices.SortFunc(out, func(a, b HostStatus) int {
		if a.Cluster != b.Cluster {
			if a.Cluster < b.Cluster {
				return -1
			}
			return 1
		}
		switch {
		case a.Address < b.Address:
			return -1
		case a.Address > b.Address:
			return 1
		}
		return 0
	})
	return out
}
