package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/outlier"
)

// Host is one upstream endpoint's live state and connection pool. It
// outlives config swaps for as long as its cluster keeps the address with
// the same connection settings.
type Host struct {
	// Address is host:port.
	Address string

	h1       atomic.Pointer[h1Pool] // HTTP/1.1 hosts, see pool
	h2       atomic.Pointer[http.Transport]
	h2once   sync.Once
	protocol config.Protocol
	timeout  time.Duration
	// dialNetwork overrides "tcp" (config.Cluster.DialNetwork).
	dialNetwork string
	st          *state // the cluster's live state (connection breaker)
	od          outlier.Host

	active      atomic.Int64  // requests in flight
	total       atomic.Uint64 // requests started
	connFail    atomic.Uint64 // connect failures
	connections atomic.Int64  // open upstream connections
}

// ConnectError says the connection to the host could not be established
// (Envoy response flag UF).
type ConnectError struct {
	Address string
	Err     error
}

func (e *ConnectError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Address, e.Err) }
func (e *ConnectError) Unwrap() error { return e.Err }

// IsConnectError reports whether err is (or wraps) a connect failure.
func IsConnectError(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce)
}

// idleConnTimeout closes pooled upstream connections nobody used for this
// long, so that pools of removed hosts do not linger.
const idleConnTimeout = 90 * time.Second

// defaultConnectTimeout is Envoy's connect_timeout default.
const defaultConnectTimeout = 5 * time.Second

func newHost(addr string, cfg *config.Cluster, st *state) *Host {
	h := &Host{Address: addr, protocol: cfg.Protocol, st: st, dialNetwork: cfg.DialNetwork}
	h.od.Address = addr
	h.timeout = connectTimeout(cfg)
	return h
}

// pool is the HTTP/1.1 host's pool, made on first use (like the HTTP/2
// transport: a sidecar with thousands of clusters uses few of them).
func (h *Host) pool() *h1Pool {
	if p := h.h1.Load(); p != nil {
		return p
	}
	h.h1.CompareAndSwap(nil, newH1Pool(h))
	return h.h1.Load()
}

// h2Transport is the HTTP/2 (h2c) host's net/http transport, built on
// first use: a sidecar with thousands of clusters uses few of them.
func (h *Host) h2Transport() *http.Transport {
	if t := h.h2.Load(); t != nil {
		return t
	}
	h.h2once.Do(func() {
		d := &net.Dialer{Timeout: h.timeout, KeepAlive: 30 * time.Second}
		var protos http.Protocols
		// Only unencrypted HTTP/2: http:// URLs use h2c with prior knowledge.
		protos.SetUnencryptedHTTP2(true)
		h.h2.Store(&http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return h.dial(ctx, d, network, true)
			},
			Protocols:           &protos,
			MaxIdleConns:        0,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     idleConnTimeout,
			DisableCompression:  true,
			// Keep the upstream's headers as they are: the proxy answers
			// 100-continue itself and forwards no proxy environment.
			Proxy: nil,
		})
	})
	return h.h2.Load()
}

// Transport is the host's connection pool as a RoundTripper, under the
// cluster's max_connections and max_pending_requests: net/http's HTTP/2
// transport for HTTP/2 hosts (see breakerTransport), the host's own
// HTTP/1.1 pool otherwise (see SendHTTP1, which the proxy calls directly).
func (h *Host) Transport() http.RoundTripper {
	if h.protocol != config.HTTP2 {
		return h1Transport{h: h}
	}
	return breakerTransport{h: h}
}

// Protocol is what the pool speaks.
func (h *Host) Protocol() config.Protocol { return h.protocol }

// ConnectTimeout is the cluster's connect_timeout the pool dials with.
func (h *Host) ConnectTimeout() time.Duration { return h.timeout }

// Begin counts a request to this host; call End when it finishes.
func (h *Host) Begin() {
	h.active.Add(1)
	h.total.Add(1)
}

// End ends a request counted by Begin.
func (h *Host) End() { h.active.Add(-1) }

// Active is the number of requests in flight.
func (h *Host) Active() int64 { return h.active.Load() }

// CountConnectFailure records a connect failure seen outside the pool
// (the TCP proxy dials itself).
func (h *Host) CountConnectFailure() { h.connFail.Add(1) }

// Dial opens a raw connection (TCP proxy), counted like pooled ones.
// At the cluster's max_connections it fails at once with an
// *OverflowError, as Envoy's TCP proxy.
func (h *Host) Dial(ctx context.Context) (net.Conn, error) {
	return h.dial(ctx, &net.Dialer{Timeout: h.timeout}, "tcp", false)
}

// dial opens a connection once the cluster's connection breaker admits it
// (see state.acquireConn), counting it on the host and the cluster.
func (h *Host) dial(ctx context.Context, d *net.Dialer, network string, canWait bool) (net.Conn, error) {
	if err := h.st.acquireConn(ctx, h.timeout, canWait); err != nil {
		return nil, err
	}
	if h.dialNetwork != "" {
		network = h.dialNetwork // LOGICAL_DNS with V4_ONLY or V6_ONLY
	}
	c, err := d.DialContext(ctx, network, h.Address)
	if err != nil {
		h.st.releaseConn()
		h.connFail.Add(1)
		return nil, &ConnectError{Address: h.Address, Err: err}
	}
	h.connections.Add(1)
	return &countedConn{Conn: c, host: h}, nil
}

// Ejected reports whether outlier detection ejected the host.
func (h *Host) Ejected() bool { return h.od.Ejected() }

func (h *Host) closeIdle() {
	if p := h.h1.Load(); p != nil {
		p.closeIdle()
	}
	if t := h.h2.Load(); t != nil {
		t.CloseIdleConnections()
	}
}

type countedConn struct {
	net.Conn
	host   *Host
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.host.connections.Add(-1)
		c.host.st.releaseConn()
	}
	return c.Conn.Close()
}

// CloseWrite half-closes when the connection supports it.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
