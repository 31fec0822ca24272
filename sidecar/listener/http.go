package listener

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/h1server"
	"github.com/seed-a778acb4/consulate/sidecar/proxy"
)

type httpListener struct {
	srv     *h1server.Server
	handler *proxy.Handler
	done    chan struct{} // Serve returned
}

// startHTTP serves HTTP/1.x on ln with the sidecar's own server (package
// h1server) and h2c prior knowledge with net/http's, which h1server hands
// those connections to.
func startHTTP(log *zap.Logger, ln net.Listener, h *proxy.Handler, gauge prometheus.Gauge) *httpListener {
	errLog := zap.NewStdLog(log.Named("http"))
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true) // h2c prior knowledge
	idle := time.Hour                // Envoy's downstream idle_timeout default
	// Envoy's max_request_headers_kb default (60 KiB); more is 431.
	const maxHeader = 60 << 10
	hdrTimeout := headerTimeout(h.State().HCM)
	srv := &h1server.Server{
		Handler: h,
		H2C: &http.Server{
			Handler:   h,
			Protocols: &protos,
			// Envoy's HTTP/2 codec reads frames of at most 16 KiB, the
			// protocol's default SETTINGS_MAX_FRAME_SIZE; Go's would take
			// 1 MiB. A larger frame is a FRAME_SIZE_ERROR (RFC 9113 4.2).
			HTTP2:             &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
			IdleTimeout:       idle,
			MaxHeaderBytes:    maxHeader,
			ReadHeaderTimeout: hdrTimeout,
			ErrorLog:          errLog,
		},
		MaxHeaderBytes:    maxHeader,
		ReadHeaderTimeout: hdrTimeout,
		IdleTimeout:       idle,
		ErrorLog:          errLog,
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				gauge.Inc()
			case http.StateClosed, http.StateHijacked:
				gauge.Dec()
			}
		},
	}
	hl := &httpListener{srv: srv, handler: h, done: make(chan struct{})}
	go func() {
		defer close(hl.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Error("listener serve", zap.Error(err))
		}
	}()
	return hl
}

// headerTimeout bounds how long a client may take to send its request
// headers, so that a slow client (slowloris) cannot hold a connection and
// its goroutine forever. Envoy creates the stream at the first header
// byte, so its request_timeout and stream_idle_timeout (default 5 min)
// already run while headers arrive; the server offers one deadline for
// the whole header block, so it gets the shorter of the two. It is taken
// from the connection manager the listener opened with: the servers read the
// field unsynchronized, so a later update cannot change it.
func headerTimeout(hcm *config.HTTPConnectionManager) time.Duration {
	if hcm == nil {
		return 0
	}
	d := hcm.StreamIdleTimeout
	if r := hcm.RequestTimeout; r > 0 && (d == 0 || r < d) {
		d = r
	}
	return d
}

// stop closes the socket, waits for requests in flight (HTTP/2 clients
// get GOAWAY) until ctx ends, then closes what is left.
func (hl *httpListener) stop(ctx context.Context) {
	if err := hl.srv.Shutdown(ctx); err != nil {
		hl.srv.Close()
	}
	<-hl.done
	hl.handler.Close(ctx)
}
