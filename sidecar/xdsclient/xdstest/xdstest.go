// Package xdstest runs the real go-control-plane ADS server (SnapshotCache,
// SotW and Delta) in process on a loopback port, for tests of the sidecar's
// xDS client and of the sidecar binary, as grpc-go's own xDS tests do.
package xdstest

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
)

// ControlPlane is the real go-control-plane ADS server with a SnapshotCache,
// in process on a loopback port, as grpc-go's own xDS tests run it.
type ControlPlane struct {
	t     *testing.T
	Addr  string
	cache cachev3.SnapshotCache
	gs    *grpc.Server
	done  chan struct{}

	mu    sync.Mutex
	nacks []string // error_detail messages received
}

// Start listens on addr ("127.0.0.1:0" for a fresh port).
func Start(t *testing.T, addr string) *ControlPlane {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	cp := &ControlPlane{
		t:     t,
		Addr:  lis.Addr().String(),
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
	t.Cleanup(cp.Stop)
	return cp
}

func (cp *ControlPlane) recordNACK(msg string) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.nacks = append(cp.nacks, msg)
}

// NACKs returns the error details received so far.
func (cp *ControlPlane) NACKs() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.nacks...)
}

// Stop ends the server and its streams; safe to call twice.
func (cp *ControlPlane) Stop() {
	select {
	case <-cp.done:
		return
	default:
	}
	cp.gs.Stop()
	<-cp.done
}

// Set publishes a snapshot for node.
func (cp *ControlPlane) Set(node string, snap *cachev3.Snapshot) {
	cp.t.Helper()
	if err := cp.cache.SetSnapshot(context.Background(), node, snap); err != nil {
		cp.t.Fatalf("SetSnapshot: %v", err)
	}
}

// WaitFor polls cond until it holds or the deadline passes.
func WaitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Snapshot builds a snapshot or fails the test.
func Snapshot(t *testing.T, version string, res map[string][]types.Resource) *cachev3.Snapshot {
	t.Helper()
	snap, err := cachev3.NewSnapshot(version, res)
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return snap
}
