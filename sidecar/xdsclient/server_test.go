package xdsclient_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// controlPlane is the real go-control-plane ADS server with a SnapshotCache,
// in process on a loopback port, as grpc-go's own xDS tests run it.
type controlPlane struct {
	t     *testing.T
	addr  string
	cache cachev3.SnapshotCache
	gs    *grpc.Server
	done  chan struct{}

	mu    sync.Mutex
	nacks []string // error_detail messages received
}

// startControlPlane listens on addr ("127.0.0.1:0" for a fresh port).
func startControlPlane(t *testing.T, addr string) *controlPlane {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	cp := &controlPlane{
		t:     t,
		addr:  lis.Addr().String(),
		cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil),
		gs:    grpc.NewServer(),
		done:  make(chan struct{}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
			if d := req.GetErrorDetail(); d != nil {
				cp.recordNACK(d.GetMessage())
			}
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			if d := req.GetErrorDetail(); d != nil {
				cp.recordNACK(d.GetMessage())
			}
			return nil
		},
	}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.gs, serverv3.NewServer(ctx, cp.cache, cb))
	go func() {
		defer close(cp.done)
		defer cancel()
		_ = cp.gs.Serve(lis)
	}()
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) recordNACK(msg string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.nacks = append(cp.nacks, msg)
}

// NACKs returns the error details received so far.
func (cp *controlPlane) NACKs() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.nacks...)
}

// stop ends the server and its streams; safe to call twice.
func (cp *controlPlane) stop() {
	select {
	case <-cp.done:
		return
	default:
	}
	cp.gs.Stop()
	<-cp.done
}

// set publishes a snapshot for node.
func (cp *controlPlane) set(node string, snap *cachev3.Snapshot) {
	cp.t.Helper()
	if err := cp.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		cp.t.Fatalf("SetSnapshot: %v", err)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
