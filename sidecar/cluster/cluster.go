package cluster

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/outlier"
)

// Cluster is one cluster of a snapshot: its config, its balancer over the
// available hosts, and its live state. Immutable apart from the atomics in
// its live state and the balancer, which outlier detection swaps.
type Cluster struct {
	cfg   *config.Cluster
	hosts []*Host // index-aligned with cfg.Endpoints
	lb    atomic.Pointer[balancer]
	state *state
}

// balancer is the load-balancing set and its picker, rebuilt whenever
// outlier detection ejects or returns a host.
type balancer struct {
	picked []bool // whether hosts[i] is in the load-balancing set
	picker Picker
}

// state is a cluster's live state, carried across config changes.
type state struct {
	name    string
	cb      atomic.Pointer[config.CircuitBreakers]
	active  atomic.Int64 // in-flight requests (max_requests)
	pending atomic.Int64 // requests waiting for a connection (max_pending_requests)
	// dialWaiters are pool dials waiting for a connection slot.
	dialWaiters atomic.Int64
	retries     atomic.Int64 // retries in flight (max_retries, retry_budget)
	conns       atomic.Int64 // open connections to all hosts (max_connections)
	// freed is closed when a connection slot frees and dials wait; made
	// by the first waiting dial (most clusters never have one).
	freed atomic.Pointer[chan struct{}]
	// overflow counts refusals by breaker.
	overflow [4]atomic.Uint64
	// ejections counts enforced ejections by reason.
	ejections [5]atomic.Uint64

	// mu serializes rebuilding the balancer (config updates and the
	// detector's goroutine); the data path never takes it.
	mu sync.Mutex
	// hosts are the distinct hosts of the newest Cluster, in endpoint
	// order (a slice: most clusters have a handful of endpoints, and a
	// map per cluster costs more than its endpoints with 10,000 of them).
	hosts    []*Host
	current  *Cluster // the newest Cluster of this state
	detector *outlier.Detector
	stop     context.CancelFunc
}

func newState(name string) *state {
	return &state{name: name}
}

// hostSet finds hosts by address: a linear search over a few, a map over
// many.
type hostSet struct {
	list   []*Host
	byAddr map[string]*Host
}

const hostScan = 16 // up to this many hosts, a linear search

func newHostSet(capacity int) hostSet {
	hs := hostSet{list: make([]*Host, 0, capacity)}
	if capacity > hostScan {
		hs.byAddr = make(map[string]*Host, capacity)
	}
	return hs
}

func (hs *hostSet) add(h *Host) {
	hs.list = append(hs.list, h)
	if hs.byAddr != nil {
		hs.byAddr[h.Address] = h
	}
}

func (hs *hostSet) find(addr string) *Host {
	if hs.byAddr != nil {
		return hs.byAddr[addr]
	}
	for _, h := range hs.list {
		if h.Address == addr {
			return h
		}
	}
	return nil
}

// Name is the cluster name.
func (c *Cluster) Name() string { return c.cfg.Name }

// Config is the cluster's configuration.
func (c *Cluster) Config() *config.Cluster { return c.cfg }

// Pick chooses a host, or nil when the cluster has none available.
func (c *Cluster) Pick(hash uint64, hasHash bool) *Host {
	return c.lb.Load().picker.Pick(hash, hasHash)
}

// rebuild recomputes the load-balancing set from the endpoints' health
// and the hosts' ejections. Called with st.mu held.
func (c *Cluster) rebuild() {
	picked, picker := buildPicker(c.cfg, c.hosts)
	c.lb.Store(&balancer{picked: picked, picker: picker})
}

// Snapshot is an immutable set of clusters by name.
type Snapshot map[string]*Cluster

// Set owns every cluster's live state. One writer (see the package doc).
type Set struct {
	log     *zap.Logger
	cur     atomic.Pointer[Snapshot]
	retired []*Host // hosts dropped by an update, closed again on Close
	clock   outlier.Clock
	manual  bool // tests drive the detectors themselves
	running sync.WaitGroup
}

// Option configures a Set.
type Option func(*Set)

// WithClock sets the clock of the outlier detectors (tests).
func WithClock(c outlier.Clock) Option { return func(s *Set) { s.clock = c } }

// NewSet returns an empty set.
func NewSet(log *zap.Logger, opts ...Option) *Set {
	s := &Set{log: log}
	for _, o := range opts {
		o(s)
	}
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
		if next[name] == nil {
			prev.state.stopDetector()
		}
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
	var st *state
	if prev != nil {
		st = prev.state
	} else {
		st = newState(cfg.Name)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cb.Store(&cfg.CircuitBreakers)
	c := &Cluster{cfg: cfg, state: st, hosts: make([]*Host, 0, len(cfg.Endpoints))}
	old := newHostSet(len(st.hosts))
	for _, h := range st.hosts {
		old.add(h)
	}
	hosts := newHostSet(len(cfg.Endpoints))
	var unique []*outlier.Host
	for _, ep := range cfg.Endpoints {
		h := hosts.find(ep.Address)
		if h == nil {
			h = old.find(ep.Address)
			if h == nil || h.protocol != cfg.Protocol || h.timeout != connectTimeout(cfg) || h.dialNetwork != cfg.DialNetwork {
				h = newHost(ep.Address, cfg, st)
			}
			hosts.add(h)
			if cfg.OutlierDetection != nil {
				unique = append(unique, &h.od)
			}
		}
		c.hosts = append(c.hosts, h)
	}
	st.hosts = hosts.list
	switch {
	case cfg.OutlierDetection != nil && st.detector == nil:
		s.startDetector(st, cfg.OutlierDetection)
		st.detector.SetHosts(unique)
	case cfg.OutlierDetection != nil:
		st.detector.SetConfig(cfg.OutlierDetection)
		st.detector.SetHosts(unique)
	case st.detector != nil:
		st.stopDetectorLocked()
	}
	st.current = c
	c.rebuild()
	s.log.Debug("cluster built", zap.String("cluster", cfg.Name), zap.Int("endpoints", len(c.hosts)))
	return c
}

// startDetector creates the cluster's outlier detector and its goroutine
// (ended by stopDetector or Close). Called with st.mu held.
func (s *Set) startDetector(st *state, cfg *config.OutlierDetection) {
	st.detector = outlier.New(cfg, outlier.Options{
		Cluster: st.name, Log: s.log, Clock: s.clock,
		OnChange: st.rebuildCurrent,
		OnEvent: func(e outlier.Event) {
			if e.Ejected {
				st.ejections[e.Reason].Add(1)
			}
		},
	})
	if s.manual {
		st.stop = func() {}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	st.stop = cancel
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		st.detector.Run(ctx)
	}()
}

// rebuildCurrent rebuilds the newest cluster's balancer after an
// ejection or a return (the detector's OnChange).
func (st *state) rebuildCurrent() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.current != nil {
		st.current.rebuild()
	}
}

func (st *state) stopDetector() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.stopDetectorLocked()
}

// stopDetectorLocked ends the detector's goroutine (without waiting: it
// may be about to take st.mu) and returns every host to service.
func (st *state) stopDetectorLocked() {
	if st.detector == nil {
		return
	}
	st.stop()
	st.detector.Release()
	st.detector, st.stop = nil, nil
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
		c.state.stopDetector()
		for _, h := range c.hosts {
			h.closeIdle()
		}
	}
	for _, h := range s.retired {
		h.closeIdle()
	}
	s.retired = nil
	s.running.Wait()
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
	// Outlier detection: ejected now, ejections so far, and the last
	// ejection's end and reason (zero when never ejected).
	Ejected        bool
	Ejections      uint32
	EjectedUntil   time.Time
	EjectionReason string
}

// Status returns every host of every cluster, sorted by cluster and
// address. Safe from any goroutine.
func (s *Set) Status() []HostStatus {
	var out []HostStatus
	for _, c := range *s.cur.Load() {
		picked := c.lb.Load().picked
		for i, h := range c.hosts {
			ep := c.cfg.Endpoints[i]
			hs := HostStatus{
				Cluster: c.cfg.Name, Address: h.Address, Weight: ep.Weight, Priority: ep.Priority,
				Health: ep.Health, Available: picked[i],
				ActiveRequests: h.active.Load(), TotalRequests: h.total.Load(),
				ConnectFailures: h.connFail.Load(), ActiveConnections: h.connections.Load(),
				Ejected: h.od.Ejected(),
			}
			if e := h.od.LastEjection(); e != nil {
				hs.Ejections, hs.EjectedUntil, hs.EjectionReason = e.Count, e.Until, e.Reason.String()
			}
			out = append(out, hs)
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
