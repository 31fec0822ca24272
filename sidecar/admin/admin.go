package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

// HostStats is the data path's live view of one upstream host.
type HostStats struct {
	Cluster string
	Address string
	// Ejected by outlier detection, until EjectedUntil.
	Ejected      bool
	EjectedUntil time.Time
	// Ejections so far and the last one's reason (consecutive_5xx, ...).
	Ejections      uint32
	EjectionReason string
	// ActiveRequests in flight; Requests and ConnectFailures since start.
	ActiveRequests  int64
	Requests        uint64
	ConnectFailures uint64
}

// HostStatsFunc reports the live state of every host the data path knows;
// it is called once per /clusters request.
type HostStatsFunc func() []HostStats

// Options configure the admin server.
type Options struct {
	// Addr is a loopback host:port, e.g. 127.0.0.1:19100.
	Addr   string
	Logger *zap.Logger
	// Gatherer is the registry /metrics exposes.
	Gatherer prometheus.Gatherer
	// Applied returns what the sidecar runs (nil before the first config).
	Applied func() *xdsclient.Applied
	// Status, when set, reports the xDS stream (connected, last NACK per
	// type, resources awaited) in /config_dump and /ready.
	Status func() xdsclient.Status
}

// Server is the admin endpoint.
type Server struct {
	opts  Options
	hosts atomic.Pointer[HostStatsFunc]
}

// New checks opts. The address must be loopback.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil || opts.Applied == nil || opts.Gatherer == nil {
		return nil, errors.New("admin: Logger, Applied and Gatherer are required")
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, err
	}
	return &Server{opts: opts}, nil
}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("admin address %q: must be a loopback IP (the admin endpoint is unauthenticated)", addr)
	}
	return nil
}

// SetHostStats installs the data path's host-stats hook (nil removes it).
func (s *Server) SetHostStats(fn HostStatsFunc) {
	if fn == nil {
		s.hosts.Store(nil)
		return
	}
	s.hosts.Store(&fn)
}

// Handler returns the admin mux.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", s.ready)
	mux.HandleFunc("GET /config_dump", s.configDump)
	mux.HandleFunc("GET /clusters", s.clusters)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
	return mux
}

// Run listens on Addr and serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	lis, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("admin listen: %w", err)
	}
	return s.Serve(ctx, lis)
}

// Serve serves on lis until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	s.opts.Logger.Info("admin listening", zap.String("addr", lis.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("admin serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-errc
	return nil
}

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.opts.Applied() == nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "not ready: no complete configuration from the control plane yet")
		if s.opts.Status != nil {
			st := s.opts.Status()
			fmt.Fprintf(w, "connected: %t\n", st.Connected)
			for _, r := range st.Waiting {
				fmt.Fprintf(w, "waiting for: %s\n", r)
			}
			for typ, r := range st.Rejected {
				fmt.Fprintf(w, "rejected %s version %q: %s\n", typ, r.Version, r.Error)
			}
		}
		return
	}
	fmt.Fprintln(w, "ready")
}
