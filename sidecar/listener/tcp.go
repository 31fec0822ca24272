package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
)

var tcpBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

type tcpState struct {
	cfg      *config.TCPProxy
	listener string
	clusters cluster.Snapshot
}

// tcpListener is a tcp_proxy listener: each accepted connection is copied
// both ways to a host of the cluster, with half-close.
type tcpListener struct {
	log    *zap.Logger
	access *accesslog.Logger
	ln     net.Listener
	gauge  prometheus.Gauge
	state  atomic.Pointer[tcpState]

	ctx    context.Context // canceled to cut the connections still open
	cancel context.CancelFunc
	conns  sync.WaitGroup
	done   chan struct{} // accept loop returned
}

func startTCP(log *zap.Logger, access *accesslog.Logger, ln net.Listener, st *tcpState, gauge prometheus.Gauge) *tcpListener {
	t := &tcpListener{log: log, access: access, ln: ln, gauge: gauge, done: make(chan struct{})}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.state.Store(st)
	go t.serve()
	return t
}

func (t *tcpListener) serve() {
	defer close(t.done)
	var backoff time.Duration
	for {
		c, err := t.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off and keep
			// accepting, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.log.Error("tcp accept", zap.Error(err), zap.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
			case <-t.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		t.conns.Add(1)
		t.gauge.Inc()
		go func() {
			defer t.conns.Done()
			defer t.gauge.Dec()
			t.handle(c)
		}()
	}
}

// stop stops accepting, lets connections finish until ctx ends, then cuts
// them.
func (t *tcpListener) stop(ctx context.Context) {
	t.ln.Close()
	<-t.done
	idle := make(chan struct{})
	go func() {
		t.conns.Wait()
		close(idle)
	}()
	select {
	case <-idle:
	case <-ctx.Done():
	}
	t.cancel()
	<-idle
}

func (t *tcpListener) handle(down net.Conn) {
	st := t.state.Load()
	e := accesslog.Entry{Start: time.Now(), Protocol: "tcp", Listener: st.listener, UpstreamCluster: st.cfg.Cluster, Attempts: 1}
	e.Downstream = down.RemoteAddr().String()
	defer func() {
		e.Duration = time.Since(e.Start)
		if t.access.Enabled() {
			t.access.Log(&e)
		}
	}()
	defer down.Close()
	c := st.clusters[st.cfg.Cluster]
	if c == nil {
		e.Flags = accesslog.NoClusterFound
		return
	}
	host := c.Pick(0, false)
	if host == nil {
		e.Flags = accesslog.NoHealthyUpstream
		return
	}
	e.UpstreamHost = host.Address
	host.Begin()
	defer host.End()
	up, err := host.Dial(t.ctx)
	switch {
	case cluster.IsOverflow(err):
		// max_connections (Envoy's tcp_proxy: upstream_cx_overflow, UO).
		e.Flags = accesslog.UpstreamOverflow
		return
	case err != nil:
		if t.ctx.Err() == nil {
			// Outlier detection: a TCP connect failure is a 5xx-class
			// (or local-origin) failure, as in Envoy's tcp_proxy.
			host.Report(cluster.Result{Kind: cluster.ConnectFailed})
		}
		e.Flags = accesslog.UpstreamConnectionFailure
		return
	}
	host.Report(cluster.Result{Kind: cluster.LocalSuccess})
	defer up.Close()
	stop := context.AfterFunc(t.ctx, func() {
		down.Close()
		up.Close()
	})
	defer stop()

	var last atomic.Int64 // unix nanos of the last byte either way
	last.Store(time.Now().UnixNano())
	idle := st.cfg.IdleTimeout
	sent := make(chan int64, 1)
	go func() { sent <- pipe(up, down, idle, &last) }()
	e.BytesReceived = 0
	e.BytesSent = pipe(down, up, idle, &last)
	e.BytesReceived = <-sent
}

// pipe copies src to dst until EOF, then half-closes dst's write side. An
// idle timeout ends the copy only when neither direction moved for that
// long (last is shared by both directions). It returns the bytes copied.
func pipe(dst, src net.Conn, idle time.Duration, last *atomic.Int64) int64 {
	bp := tcpBufs.Get().(*[]byte)
	defer tcpBufs.Put(bp)
	buf := *bp
	var n int64
	for {
		if idle > 0 {
			src.SetReadDeadline(time.Now().Add(idle))
		}
		r, err := src.Read(buf)
		if r > 0 {
			last.Store(time.Now().UnixNano())
			w, werr := dst.Write(buf[:r])
			n += int64(w)
			if werr != nil {
				src.Close()
				return n
			}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && time.Since(time.Unix(0, last.Load())) < idle {
				continue // the other direction is active
			}
			if err == io.EOF {
				closeWrite(dst)
				return n
			}
			// Reset, idle timeout or shutdown: end both directions.
			src.Close()
			dst.Close()
			return n
		}
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
