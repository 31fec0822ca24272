// Package admin is the control plane's HTTP admin endpoint: liveness,
// readiness, per-proxy xDS status and Prometheus metrics.
//
// Concurrency: the handlers only read through the Status interface, whose
// implementation (server.Server) is safe for concurrent use. Serve returns
// when its context is done, after a bounded graceful shutdown.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/control-plane/server"
)

// Status is what the admin endpoint reports on; *server.Server is one.
type Status interface {
	// Ready reports whether the first mesh snapshot has been built.
	Ready() bool
	// Status lists the connected proxies.
	Status() []server.ProxyStatus
	// ConfigEntryErrors lists the config entries Consul holds that the
	// model could not decode.
	ConfigEntryErrors() []server.ConfigEntryError
	// ProxylessWarnings is what grpc-go will not apply of the proxyless
	// configuration.
	ProxylessWarnings() []server.ProxylessWarning
}

// Handler returns the admin HTTP handler:
//
//	/healthz  200 while the process serves HTTP
//	/readyz   200 once the first Consul snapshot is built, 503 before
//	/status   JSON {"ready": bool, "config_entry_errors": [server.ConfigEntryError...],
//	          "proxyless_warnings": [server.ProxylessWarning...], "proxies": [server.ProxyStatus...]}
//	/metrics  Prometheus exposition of gatherer
//	/debug/pprof/...  Go's profiles (the admin address is loopback by default)
func Handler(st Status, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !st.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("waiting for the first Consul snapshot\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(Report{Ready: st.Ready(), ConfigEntryErrors: st.ConfigEntryErrors(),
			ProxylessWarnings: st.ProxylessWarnings(), Proxies: st.Status()})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// Report is the /status document.
type Report struct {
	Ready bool `json:"ready"`
	// ConfigEntryErrors are entries Consul accepted that we cannot apply
	// (kind, name, field, error); each keeps its last good version.
	ConfigEntryErrors []server.ConfigEntryError `json:"config_entry_errors"`
	// ProxylessWarnings are what grpc-go clients will not apply.
	ProxylessWarnings []server.ProxylessWarning `json:"proxyless_warnings"`
	// Proxies are the connected streams; a proxy whose translation fails
	// has a translation_error.
	Proxies []server.ProxyStatus `json:"proxies"`
}

// Serve serves h on lis until ctx is done, then shuts down within 2s.
func Serve(ctx context.Context, lis net.Listener, h http.Handler, log *zap.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	log.Info("admin listening", zap.String("addr", lis.Addr().String()))
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
