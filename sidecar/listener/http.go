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
	srv     server
	handler *proxy.Handler
	done    chan struct{} // Serve returned
}

// server is h1server's or net/http's.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// startHTTP serves ln as the connection manager's codec_type says: AUTO
// (the default) HTTP/1.x with the sidecar's own server (package h1server)
// and h2c prior knowledge with net/http's, which h1server hands those
// connections to; HTTP1 only the former (the HTTP/2 preface is answered
// 505); HTTP2 only the latter (anything but the preface is closed).
func startHTTP(log *zap.Logger, ln net.Listener, h *proxy.Handler, gauge prometheus.Gauge) *httpListener {
	errLog := zap.NewStdLog(log.Named("http"))
	idle := time.Hour // Envoy's downstream idle_timeout default
	// Envoy's max_request_headers_kb default (60 KiB); more is 431.
	const maxHeader = 60 << 10
	hcm := h.State().HCM
	hdrTimeout := headerTimeout(hcm)
	connState := func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			gauge.Inc()
		case http.StateClosed, http.StateHijacked:
			gauge.Dec()
		}
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // h2c prior knowledge
	h2c := &http.Server{
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
	}
	var srv server
	switch codec := codecOf(hcm); codec {
	case config.CodecHTTP2:
		h2c.ConnState = connState
		srv = h2c
	default:
		h1 := &h1server.Server{
			Handler:           h,
			MaxHeaderBytes:    maxHeader,
			ReadHeaderTimeout: hdrTimeout,
			IdleTimeout:       idle,
			ErrorLog:          errLog,
			ConnState:         connState,
		}
		if codec == config.CodecAuto {
			h1.H2C = h2c // h1server hands it only connections opening with the preface
		}
		srv = h1
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

func codecOf(hcm *config.HTTPConnectionManager) config.Codec {
	if hcm == nil {
		return config.CodecAuto
	}
	return hcm.Codec
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
