package server

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
)

// Options tune a Server. Zero values take the defaults.
type Options struct {
	// Debounce is the quiet time after a model change before a rebuild
	// (default 50ms); a change after that much quiet is rebuilt at once,
	// those following it wait for the quiet. MaxDelay bounds how long a
	// burst of changes can postpone a rebuild (default 250ms).
	Debounce, MaxDelay time.Duration
	// Workers translate in parallel during a rebuild (default GOMAXPROCS).
	Workers int
	// ShutdownGrace bounds the graceful stop before streams are cut
	// (default 5s).
	ShutdownGrace time.Duration
}

func (o Options) withDefaults() Options {
	if o.Debounce <= 0 {
		o.Debounce = 50 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 250 * time.Millisecond
	}
	if o.MaxDelay < o.Debounce {
		o.MaxDelay = o.Debounce
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers()
	}
	if o.ShutdownGrace <= 0 {
		o.ShutdownGrace = 5 * time.Second
	}
	return o
}

// Server is the xDS control plane: ADS (SotW and Delta) over gRPC, one
// snapshot per connected proxy rebuilt when the model changes.
type Server struct {
	log     *zap.Logger
	opts    Options
	cache   cache.SnapshotCache
	streams *streams
	builder *builder
}

// New returns a Server serving what tr makes of src's model.
func New(log *zap.Logger, src Source, tr Translator, m *metrics.Metrics, opts Options) *Server {
	opts = opts.withDefaults()
	st := newStreams(log, m)
	st.entries = func(nodeID string, names []string) []string { return configEntries(src.Current(), nodeID, names) }
	// ads=false on purpose: in ADS mode the cache stays silent when a
	// request's resource names are not a superset of the snapshot's, and a
	// proxyless client subscribes to one listener of the many the shared
	// proxyless snapshot holds.
	c := cache.NewSnapshotCache(false, cache.IDHash{}, zapLogger{log.Named("xds-cache").Sugar()})
	return &Server{
		log:     log,
		opts:    opts,
		cache:   c,
		streams: st,
		builder: &builder{
			log: log, cache: c, streams: st, source: src, tr: tr, metrics: m,
			debounce: opts.Debounce, maxDelay: opts.MaxDelay, workers: opts.Workers,
			nodes: map[string]*built{},
		},
	}
}

// Ready reports whether the first model snapshot has been built.
func (s *Server) Ready() bool { return s.builder.ready.Load() }

// Status lists the connected proxies.
func (s *Server) Status() []ProxyStatus { return s.streams.Status() }

// ConfigEntryErrors lists the config entry fields in Consul that the
// current model could not decode (each entry keeps its last good version).
func (s *Server) ConfigEntryErrors() []ConfigEntryError {
	return configEntryErrors(s.builder.source.Current())
}

// ProxylessWarnings is what grpc-go will not apply of the last proxyless
// translation (empty until a proxyless client connects).
func (s *Server) ProxylessWarnings() []ProxylessWarning {
	if ws := s.builder.warnings.Load(); ws != nil {
		return slices.Clone(*ws)
	}
	return []ProxylessWarning{}
}

// Serve serves ADS on lis until ctx is done, then stops: open streams are
// ended, a graceful stop is given ShutdownGrace, then connections are cut.
// It returns nil after a shutdown, or the listener's error.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	xdsServer := serverv3.NewServer(ctx, nackGuard{SnapshotCache: s.cache, nacked: s.streams.nackedVersion}, s.streams,
		sotw.WithLogger(zapLogger{s.log.Named("xds-server").Sugar()}))
	g := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, xdsServer)

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.builder.run(ctx)
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()
	s.log.Info("xDS server listening", zap.String("addr", lis.Addr().String()))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		cancel()
	}
	// ctx is done: go-control-plane's stream handlers return, so
	// GracefulStop normally finishes at once; Stop cuts what does not.
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		g.GracefulStop()
	}()
	t := time.NewTimer(s.opts.ShutdownGrace)
	defer t.Stop()
	select {
	case <-stopped:
	case <-t.C:
		s.log.Warn("graceful stop timed out; closing connections", zap.Duration("grace", s.opts.ShutdownGrace))
		g.Stop()
		<-stopped
	}
	<-loopDone
	if err == nil {
		err = <-serveErr
	}
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	s.log.Info("xDS server stopped")
	return err
}

// zapLogger adapts zap to go-control-plane's log.Logger; its chatter goes
// to debug, its warnings and errors stay what they are.
type zapLogger struct{ s *zap.SugaredLogger }

func (l zapLogger) Debugf(f string, a ...any) { l.s.Debugf(f, a...) }
func (l zapLogger) Infof(f string, a ...any)  { l.s.Debugf(f, a...) }
func (l zapLogger) Warnf(f string, a ...any)  { l.s.Warnf(f, a...) }
func (l zapLogger) Errorf(f string, a ...any) { l.s.Errorf(f, a...) }
