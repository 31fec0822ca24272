package xds

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/seed-a778acb4/consulate/discovery"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/listener"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

// meshHarness is the pipeline the end-to-end tests drive, in process: the
// real discovery watcher on a real Consul, this package's translation for
// one sidecar set in go-control-plane's cache and served over ADS, and
// the sidecar's real data path (xDS client, listener manager, router,
// clusters). It stops when the test ends.
type meshHarness struct {
	upstreamPort int
	http         *http.Client
	applied      atomic.Pointer[config.Config] // the sidecar's last applied config
	lastErr      atomic.Value                  // the last translation error, as text
}

// startMeshHarness starts the pipeline for the sidecar nodeID, whose
// upstream listens on upstreamPort; ctx bounds it.
func startMeshHarness(ctx context.Context, t *testing.T, c *api.Client, nodeID string, upstreamPort int) *meshHarness {
	t.Helper()
	h := &meshHarness{upstreamPort: upstreamPort, http: &http.Client{Timeout: 5 * time.Second}}
	h.lastErr.Store("<nil>")

	// Control plane: each model snapshot is translated for the sidecar and
	// set in go-control-plane's cache; a failed translation keeps the
	// previous snapshot (as the real control plane does).
	w := discovery.NewWatcher(c, discovery.Options{Coalesce: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}, zaptest.NewLogger(t, zaptestLevel()))
	snapshots := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	t.Cleanup(func() { stop(); wg.Wait() })
	wg.Go(func() { _ = w.Run(runCtx) })
	wg.Go(func() {
		ch, unsubscribe := w.Subscribe()
		defer unsubscribe()
		for {
			if s := w.Current(); s != nil && s.Proxy(nodeID) != nil {
				res, err := ForSidecar(s, nodeID)
				if err == nil {
					var cs *cache.Snapshot
					if cs, err = res.Snapshot(); err == nil {
						err = snapshots.SetSnapshot(runCtx, nodeID, cs)
					}
				}
				h.lastErr.Store(fmt.Sprint(err))
			}
			select {
			case <-ch:
			case <-runCtx.Done():
				return
			}
		}
	})
	grpcServer := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, server.NewServer(runCtx, snapshots, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)

	// The sidecar's data path.
	log := zap.NewNop()
	reg := prometheus.NewRegistry()
	m, err := listener.NewManager(log, reg, listener.Options{DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	client, err := xdsclient.New(xdsclient.Options{
		NodeID: nodeID, ControlPlane: lis.Addr().String(), Logger: log, Registerer: reg,
		Apply: func(_ context.Context, cfg *config.Config) error {
			if err := m.Apply(cfg); err != nil {
				return err
			}
			h.applied.Store(cfg)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = client.Run(runCtx) })
	t.Cleanup(func() {
		closeCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		m.Close(closeCtx)
	})
	return h
}

// get sends GET path to the sidecar's upstream listener and returns the
// status and body (0 and the error text when the request failed).
func (h *meshHarness) get(path string) (int, string) {
	resp, err := h.http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", h.upstreamPort, path))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// count sends n requests to path and counts the answers by body (the
// backend's name), or by status code when it is not 200.
func (h *meshHarness) count(path string, n int) map[string]int {
	out := map[string]int{}
	for range n {
		code, body := h.get(path)
		if code != http.StatusOK {
			body = fmt.Sprint(code)
		}
		out[body]++
	}
	return out
}

// waitApplied waits until the sidecar has applied a config for which ok
// holds, and returns how long that took.
func (h *meshHarness) waitApplied(ctx context.Context, t *testing.T, what string, ok func(*config.Config) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cfg := h.applied.Load(); cfg != nil && ok(cfg) {
			return time.Since(start)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: not applied by the sidecar within the deadline (last translation error: %v)", what, h.lastErr.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
