package listener

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/proxy"
	"github.com/seed-a778acb4/consulate/sidecar/router"
)

// Options configure a Manager.
type Options struct {
	// AccessLog configures the access log (on, every request, by default).
	AccessLog accesslog.Options
	// AccessLogger is where access-log lines go (e.g. a buffered logger);
	// nil: the manager's logger.
	AccessLogger *zap.Logger
	// DrainTimeout bounds how long a removed or changed listener waits for
	// its requests in flight (default 10 s).
	DrainTimeout time.Duration
}

// Manager owns the listeners and the clusters' live state.
type Manager struct {
	log      *zap.Logger
	opts     Options
	metrics  *proxy.Metrics
	access   *accesslog.Logger
	clusters *cluster.Set

	mu        sync.Mutex // serializes Apply and Close
	listeners map[string]*listener
	closed    bool
	drains    sync.WaitGroup // listeners draining in the background
	drainCtx  context.Context
	forceStop context.CancelFunc
}

// NewManager returns a Manager with no listeners; metrics are registered
// on reg.
func NewManager(log *zap.Logger, reg prometheus.Registerer, opts Options) (*Manager, error) {
	metrics, err := proxy.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	if opts.DrainTimeout == 0 {
		opts.DrainTimeout = 10 * time.Second
	}
	m := &Manager{
		log: log, opts: opts, metrics: metrics,
		access:    accesslog.New(cmp.Or(opts.AccessLogger, log), opts.AccessLog),
		clusters:  cluster.NewSet(log),
		listeners: map[string]*listener{},
	}
	// Circuit breaker and outlier detection metrics, read at scrape time.
	if err := reg.Register(m.clusters); err != nil {
		return nil, fmt.Errorf("register cluster metrics: %w", err)
	}
	m.drainCtx, m.forceStop = context.WithCancel(context.Background())
	return m, nil
}

// listener is one running listener; exactly one of http and tcp is set.
type listener struct {
	cfg  *config.Listener
	ln   net.Listener
	http *httpListener
	tcp  *tcpListener
}

func (l *listener) kind() string { return kindOf(l.cfg) }

// kindOf is what a running listener cannot change without being replaced:
// TCP or HTTP, and the HTTP codec its server was started with.
func kindOf(c *config.Listener) string {
	switch {
	case c.TCP != nil:
		return "tcp"
	case c.HTTP != nil && c.HTTP.Codec == config.CodecHTTP1:
		return "http1"
	case c.HTTP != nil && c.HTTP.Codec == config.CodecHTTP2:
		return "http2"
	}
	return "http"
}

// Apply makes the running listeners match cfg (see the package doc). It
// is all or nothing where it can be: every new address that no running
// listener holds is bound before anything changes, so a busy port leaves
// the running listeners, routes and clusters exactly as they were (the xDS
// client then NACKs, and the last good config keeps serving). Only an
// address freed by a listener that this same config stops or moves can
// fail after the swap began; the error then names it and the rest is
// applied.
func (m *Manager) Apply(cfg *config.Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("listener manager closed")
	}

	// What goes away or moves, so that its address is free.
	var stopping []string
	freed := map[string]bool{} // addresses of the listeners stopping
	for name, l := range m.listeners {
		nc := cfg.Listeners[name]
		if nc != nil && nc.Address == l.cfg.Address && kindOf(nc) == l.kind() {
			continue
		}
		stopping = append(stopping, name)
		freed[l.cfg.Address] = true
	}
	// Bind what is new, except on an address a stopping listener frees,
	// before any change.
	bound := map[string]net.Listener{}
	var errs []error
	for name, lc := range cfg.Listeners {
		if l := m.listeners[name]; l != nil && !slices.Contains(stopping, name) {
			continue
		}
		if lc.HTTP == nil && lc.TCP == nil {
			errs = append(errs, fmt.Errorf("listener %s on %s: neither an HTTP connection manager nor a TCP proxy", name, lc.Address))
			continue
		}
		if freed[lc.Address] {
			continue
		}
		ln, err := net.Listen("tcp", lc.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("listener %s on %s: %w", name, lc.Address, err))
			continue
		}
		bound[name] = ln
	}
	if len(errs) > 0 {
		for _, ln := range bound {
			ln.Close()
		}
		return fmt.Errorf("nothing applied: %w", errors.Join(errs...))
	}

	snap := m.clusters.Update(cfg.Clusters)
	tables := map[string]*router.Table{}
	for name, rc := range cfg.Routes {
		tables[name] = router.Compile(rc)
	}
	for _, name := range stopping {
		l := m.listeners[name]
		delete(m.listeners, name)
		m.log.Info("listener stopping", zap.String("listener", name), zap.String("address", l.cfg.Address))
		m.stopInBackground(l)
	}
	for name, lc := range cfg.Listeners {
		if l := m.listeners[name]; l != nil {
			l.cfg = lc
			m.swap(l, snap, tables)
			continue
		}
		ln := bound[name]
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", lc.Address); err != nil {
				errs = append(errs, fmt.Errorf("listener %s on %s: %w", name, lc.Address, err))
				continue
			}
		}
		l := m.open(lc, ln, snap, tables)
		m.listeners[name] = l
		m.log.Info("listener started", zap.String("listener", name), zap.String("address", l.ln.Addr().String()), zap.String("kind", l.kind()))
	}
	return errors.Join(errs...)
}

func (m *Manager) httpState(lc *config.Listener, snap cluster.Snapshot, tables map[string]*router.Table) *proxy.State {
	st := &proxy.State{Listener: lc.Name, HCM: lc.HTTP, Clusters: snap, BufferLimit: lc.PerConnectionBufferLimitBytes}
	switch {
	case lc.HTTP.Inline != nil:
		st.Routes = router.Compile(lc.HTTP.Inline)
	default:
		st.Routes = tables[lc.HTTP.RouteConfigName]
	}
	return st
}

func (m *Manager) swap(l *listener, snap cluster.Snapshot, tables map[string]*router.Table) {
	if l.http != nil {
		l.http.handler.Swap(m.httpState(l.cfg, snap, tables))
		return
	}
	l.tcp.state.Store(&tcpState{cfg: l.cfg.TCP, listener: l.cfg.Name, clusters: snap})
}

// open starts serving lc on ln, which it owns from then on.
func (m *Manager) open(lc *config.Listener, ln net.Listener, snap cluster.Snapshot, tables map[string]*router.Table) *listener {
	l := &listener{cfg: lc, ln: ln}
	gauge := m.metrics.Connections(lc.Name)
	if lc.HTTP != nil {
		l.http = startHTTP(m.log, ln, proxy.NewHandler(m.log, m.access, m.metrics, m.httpState(lc, snap, tables)), gauge)
	} else {
		l.tcp = startTCP(m.log, m.access, ln, &tcpState{cfg: lc.TCP, listener: lc.Name, clusters: snap}, gauge)
	}
	return l
}

func (m *Manager) stopInBackground(l *listener) {
	// Free the address now (a replacement may bind it in this Apply);
	// connections already accepted drain in the background.
	l.ln.Close()
	m.drains.Add(1)
	go func() {
		defer m.drains.Done()
		ctx, cancel := context.WithTimeout(m.drainCtx, m.opts.DrainTimeout)
		defer cancel()
		l.stop(ctx)
	}()
}

func (l *listener) stop(ctx context.Context) {
	if l.http != nil {
		l.http.stop(ctx)
	} else {
		l.tcp.stop(ctx)
	}
}

// Close stops every listener, letting requests in flight finish until ctx
// ends, then closes the upstream pools.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	var wg sync.WaitGroup
	for _, l := range m.listeners {
		wg.Go(func() { l.stop(ctx) })
	}
	wg.Wait()
	m.listeners = nil
	stop := context.AfterFunc(ctx, m.forceStop)
	m.drains.Wait()
	stop()
	m.forceStop()
	m.clusters.Close()
	return ctx.Err()
}

// Clusters returns every upstream host's live state (admin /clusters).
func (m *Manager) Clusters() []cluster.HostStatus { return m.clusters.Status() }

// Addr returns the bound address of a listener (useful when the configured
// port is 0), or nil.
func (m *Manager) Addr(name string) net.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l := m.listeners[name]; l != nil {
		return l.ln.Addr()
	}
	return nil
}
