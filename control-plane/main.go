// Command control-plane is Consulate's xDS control plane: it watches Consul
// (package discovery), translates the mesh model for each connected proxy
// (package xds) and serves it over ADS (package control-plane/server), with
// an admin HTTP endpoint (package control-plane/admin).
//
// It is stateless: every replica pointed at the same Consul serves the same
// configuration with the same (content-derived) versions.
//
// `control-plane probe [-admin-addr 127.0.0.1:19000] [-live]` exits 0 if
// the admin endpoint's /readyz (with -live: /healthz) answers 200, else 1
// with the reason: an exec health check for images without curl
// (package internal/probe).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/control-plane/admin"
	"github.com/seed-a778acb4/consulate/control-plane/metrics"
	"github.com/seed-a778acb4/consulate/control-plane/server"
	"github.com/seed-a778acb4/consulate/discovery"
	"github.com/seed-a778acb4/consulate/internal/logging"
	"github.com/seed-a778acb4/consulate/internal/probe"
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
		fmt.Fprintln(os.Stderr, "control-plane:", err)
		os.Exit(2)
	}
	log, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "control-plane:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("control-plane failed", zap.Error(err))
		_ = log.Sync()
		os.Exit(1)
	}
	log.Info("control-plane stopped")
	_ = log.Sync()
}

// addrs are the listening addresses, reported once both listen.
type addrs struct {
	XDS, Admin string
	Server     *server.Server
}

// run serves until ctx is done. listening, if set, receives the actual
// addresses (ports may be :0) once both listeners are open.
func run(ctx context.Context, cfg config, log *zap.Logger, listening func(addrs)) error {
	// Token, TLS and the rest come from CONSUL_* as Consul's CLI reads them.
	client, err := discovery.NewClient(discovery.ClientConfig{Address: cfg.ConsulAddr})
	if err != nil {
		return fmt.Errorf("consul client for %s: %w", cfg.ConsulAddr, err)
	}
	xdsLis, err := net.Listen("tcp", cfg.XDSAddr)
	if err != nil {
		return fmt.Errorf("xds listener: %w", err)
	}
	adminLis, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		_ = xdsLis.Close()
		return fmt.Errorf("admin listener: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.New(reg)
	watcher := discovery.NewWatcher(client, discovery.Options{Coalesce: cfg.Coalesce}, log)
	srv := server.New(log, watcher, &server.XDS{}, m, server.Options{Debounce: cfg.Debounce, ShutdownGrace: cfg.Shutdown})
	log.Info("control-plane starting", zap.String("consul_addr", cfg.ConsulAddr),
		zap.String("xds_addr", xdsLis.Addr().String()), zap.String("admin_addr", adminLis.Addr().String()))
	if listening != nil {
		listening(addrs{XDS: xdsLis.Addr().String(), Admin: adminLis.Addr().String(), Server: srv})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 3)
	go func() { errs <- ignoreCanceled(watcher.Run(ctx), "discovery") }()
	go func() { errs <- wrap(srv.Serve(ctx, xdsLis), "xds server") }()
	go func() { errs <- wrap(admin.Serve(ctx, adminLis, admin.Handler(srv, reg), log), "admin server") }()

	// The first to end (ctx done, or a failure) stops the others.
	var first error
	for range 3 {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel()
	}
	return first
}

func wrap(err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func ignoreCanceled(err error, what string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
