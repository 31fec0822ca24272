// Command sidecar is Consulate's sidecar proxy. It connects to the control
// plane over ADS (package xdsclient), decodes what it receives into the
// runtime config (package decode), opens the listeners and forwards
// traffic (package listener and the data path under it), and serves a
// loopback admin endpoint (package admin).
//
// It opens no listener and reports not ready until it holds a first
// complete configuration; after that it keeps serving the last good one
// while the control plane is unreachable.
//
// Usage:
//
//	sidecar -proxy-id web-1-sidecar-proxy [-control-plane 127.0.0.1:18000]
//	        [-admin-addr 127.0.0.1:19100] [-xds-protocol delta|sotw]
//	        [-log-level info] [-log-format json|console] [-drain-timeout 10s]
//	        [-access-log on|off] [-access-log-sample-rate 1]
//	sidecar probe [-admin-addr 127.0.0.1:19100] [-live] [-timeout 2s]
//
// `sidecar probe` exits 0 if the admin endpoint's /ready answers 200, else
// 1 with the reason (with -live: if the admin endpoint answers at all): an
// exec health check for orchestrators, which cannot reach the loopback-only
// admin endpoint themselves (package internal/probe).
//
// Every flag can be given as an environment variable instead: CONSULATE_
// followed by the flag name in upper case with "-" as "_", e.g.
// CONSULATE_PROXY_ID, CONSULATE_CONTROL_PLANE. A flag wins over its
// variable. The proxy id is the Consul service ID of the connect-proxy
// registration (<instance>-sidecar-proxy), which the control plane uses as
// the xDS node id.
//
// The access log (one JSON line per request, at info level, on stderr) is
// buffered: written when 64 KiB are pending, every second, and at exit.
//
// Admin endpoint (loopback only): /ready (200 once configured, else 503
// with what it waits for), /config_dump (the xDS resources in force, the
// stream status and the last rejection per type), /clusters (every host
// with health, weight and live counters; ?format=json), /metrics
// (Prometheus: consulate_sidecar_xds_* and the data path's series).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/internal/logging"
	"github.com/seed-a778acb4/consulate/internal/probe"
	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/admin"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/dns"
	"github.com/seed-a778acb4/consulate/sidecar/listener"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "probe" {
		os.Exit(probe.Main(os.Args[2:], probeTarget, os.Getenv, os.Stderr))
	}
	cfg, err := parseFlags(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		os.Exit(2)
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		os.Exit(2)
	}
	access, flushAccess, err := logging.NewBuffered(cfg.LogLevel, cfg.LogFormat, 64<<10, time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecar:", err)
		os.Exit(2)
	}
	cfg.AccessLogger = access
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err = run(ctx, cfg, log, nil)
	_ = flushAccess()
	if err != nil {
		log.Error("sidecar failed", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	log.Info("sidecar stopped")
	_ = log.Sync()
}

// settings is the parsed command line.
type settings struct {
	ProxyID      string
	ControlPlane string
	AdminAddr    string
	LogLevel     string
	LogFormat    string
	XDSProtocol  xdsclient.Protocol
	DrainTimeout time.Duration
	AccessLog    accesslog.Options
	// AccessLogger receives the access log (main's buffered logger, not a
	// flag); nil: the logger run is given.
	AccessLogger *zap.Logger
}

// flagSpec is one flag with its environment variable.
type flagSpec struct {
	name, env, def, usage string
	dst                   *string
}

// parseFlags reads flags; each defaults to its CONSULATE_* environment
// variable, then to the built-in default. Flags win over the environment.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (settings, error) {
	var s settings
	var proto, drain, access, sample string
	specs := []flagSpec{
		{"proxy-id", "CONSULATE_PROXY_ID", "", "xDS node id: this sidecar's Consul proxy service ID, e.g. web-1-sidecar-proxy (required)", &s.ProxyID},
		{"control-plane", "CONSULATE_CONTROL_PLANE", "127.0.0.1:18000", "control plane gRPC (ADS) address host:port", &s.ControlPlane},
		{"admin-addr", "CONSULATE_ADMIN_ADDR", "127.0.0.1:19100", "admin HTTP address (loopback only): /ready /config_dump /clusters /metrics", &s.AdminAddr},
		{"log-level", "CONSULATE_LOG_LEVEL", "info", "log level: debug, info, warn, error", &s.LogLevel},
		{"log-format", "CONSULATE_LOG_FORMAT", "json", "log format: json or console", &s.LogFormat},
		{"xds-protocol", "CONSULATE_XDS_PROTOCOL", "delta", "ADS protocol: delta (incremental) or sotw (state of the world)", &proto},
		{"drain-timeout", "CONSULATE_DRAIN_TIMEOUT", "10s", "how long listeners drain requests in flight on change or shutdown", &drain},
		{"access-log", "CONSULATE_ACCESS_LOG", "on", "access log (a JSON line per request at info level, buffered): on or off", &access},
		{"access-log-sample-rate", "CONSULATE_ACCESS_LOG_SAMPLE_RATE", "1", "fraction of requests logged, in (0, 1]", &sample},
	}
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(out)
	for _, sp := range specs {
		def := sp.def
		if v := getenv(sp.env); v != "" {
			def = v
		}
		fs.StringVar(sp.dst, sp.name, def, fmt.Sprintf("%s (env %s)", sp.usage, sp.env))
	}
	fs.Usage = func() {
		fmt.Fprintln(out, "Usage: sidecar -proxy-id <id> [flags]\n       sidecar probe [-admin-addr addr] [-live]   (exit 0 if /ready answers 200; see sidecar probe -h)\n\nConsulate sidecar proxy. Every flag can also be set by the environment variable named with it.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return s, err
	}
	if fs.NArg() > 0 {
		return s, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if s.ProxyID == "" {
		return s, errors.New("-proxy-id (CONSULATE_PROXY_ID) is required")
	}
	p, err := xdsclient.ParseProtocol(proto)
	if err != nil {
		return s, err
	}
	s.XDSProtocol = p
	if s.DrainTimeout, err = time.ParseDuration(drain); err != nil || s.DrainTimeout <= 0 {
		return s, fmt.Errorf("-drain-timeout %q: want a positive duration", drain)
	}
	switch access {
	case "on":
	case "off":
		s.AccessLog.Off = true
	default:
		return s, fmt.Errorf("-access-log %q: want on or off", access)
	}
	if s.AccessLog.SampleRate, err = strconv.ParseFloat(sample, 64); err != nil || !(s.AccessLog.SampleRate > 0 && s.AccessLog.SampleRate <= 1) {
		return s, fmt.Errorf("-access-log-sample-rate %q: want a fraction in (0, 1]", sample)
	}
	return s, nil
}

// started reports what run opened, for tests (ports may be :0).
type started struct {
	AdminAddr string
	Client    *xdsclient.Client
	Listeners *listener.Manager
}

// run serves until ctx is done. onStart, if set, is called once the admin
// endpoint listens.
func run(ctx context.Context, s settings, log *zap.Logger, onStart func(started)) error {
	log = log.With(zap.String("proxy_id", s.ProxyID))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	lopts := listener.Options{DrainTimeout: s.DrainTimeout, AccessLog: s.AccessLog}
	if s.AccessLogger != nil {
		lopts.AccessLogger = s.AccessLogger.With(zap.String("proxy_id", s.ProxyID))
	}
	listeners, err := listener.NewManager(log, reg, lopts)
	if err != nil {
		return fmt.Errorf("listener manager: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout)
		defer cancel()
		if err := listeners.Close(closeCtx); err != nil {
			log.Warn("listeners did not drain in time", zap.Error(err))
		}
	}()

	// STRICT_DNS clusters get their hosts from DNS on the way in.
	resolver := dns.New(log.Named("dns"), func(_ context.Context, cfg *config.Config) error {
		return listeners.Apply(cfg)
	}, nil)
	client, err := xdsclient.New(xdsclient.Options{
		NodeID:       s.ProxyID,
		ControlPlane: s.ControlPlane,
		Protocol:     s.XDSProtocol,
		Logger:       log,
		Registerer:   reg,
		Apply:        resolver.Apply,
	})
	if err != nil {
		return err
	}
	// /clusters shows a STRICT_DNS cluster's resolved hosts, as they run.
	applied := func() *xdsclient.Applied {
		a := client.Applied()
		if a == nil {
			return nil
		}
		if cfg := resolver.Expand(a.Config); cfg != a.Config {
			c := *a
			c.Config = cfg
			return &c
		}
		return a
	}
	adm, err := admin.New(admin.Options{Addr: s.AdminAddr, Logger: log, Gatherer: reg, Applied: applied, Status: client.Status})
	if err != nil {
		return err
	}
	adm.SetHostStats(func() []admin.HostStats {
		hosts := listeners.Clusters()
		out := make([]admin.HostStats, 0, len(hosts))
		for _, h := range hosts {
			out = append(out, admin.HostStats{
				Cluster: h.Cluster, Address: h.Address,
				ActiveRequests: h.ActiveRequests, Requests: h.TotalRequests, ConnectFailures: h.ConnectFailures,
				Ejected: h.Ejected, EjectedUntil: h.EjectedUntil, Ejections: h.Ejections, EjectionReason: h.EjectionReason,
			})
		}
		return out
	})
	adminLis, err := net.Listen("tcp", s.AdminAddr)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() {
		if err := adm.Serve(ctx, adminLis); err != nil {
			errc <- err
			cancel()
		}
	})
	wg.Go(func() { resolver.Run(ctx) })
	wg.Go(func() {
		if err := client.Run(ctx); err != nil {
			errc <- err
			cancel()
		}
	})
	log.Info("sidecar started",
		zap.String("control_plane", s.ControlPlane), zap.String("xds_protocol", string(s.XDSProtocol)),
		zap.String("admin_addr", adminLis.Addr().String()))
	if onStart != nil {
		onStart(started{AdminAddr: adminLis.Addr().String(), Client: client, Listeners: listeners})
	}
	wg.Wait()
	close(errc)
	return <-errc
}
