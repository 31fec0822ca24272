package xdsstatic

import (
	"context"
	"fmt"
	"net"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Serve serves snaps (by node id) over ADS on lis until ctx is done.
func Serve(ctx context.Context, lis net.Listener, snaps map[string]*cachev3.Snapshot) error {
	cache := cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)
	for node, s := range snaps {
		if err := cache.SetSnapshot(ctx, node, s); err != nil {
			return fmt.Errorf("snapshot for %s: %w", node, err)
		}
	}
	// The same keepalive policy as the control plane (control-plane/server):
	// the sidecar pings every 30 s, which grpc-go's default policy (5 min)
	// answers with GOAWAY too_many_pings.
	gs := grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, cache, nil))
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case <-ctx.Done():
		gs.Stop()
		<-errc
		return nil
	case err := <-errc:
		return err
	}
}
