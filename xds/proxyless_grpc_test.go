package xds

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// ackRecorder remembers, per type URL, the versions a client ACKed and the
// NACK details it sent.
type ackRecorder struct {
	mu    sync.Mutex
	acked map[string]string
	nacks []string
}

func (r *ackRecorder) onRequest(_ int64, req *discoveryv3.DiscoveryRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if req.GetErrorDetail() != nil {
		r.nacks = append(r.nacks, fmt.Sprintf("%s version %s: %s", req.GetTypeUrl(), req.GetVersionInfo(), req.GetErrorDetail().GetMessage()))
		return nil
	}
	if req.GetVersionInfo() != "" {
		r.acked[req.GetTypeUrl()] = req.GetVersionInfo()
	}
	return nil
}

func (r *ackRecorder) state() (map[string]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked := make(map[string]string, len(r.acked))
	for k, v := range r.acked {
		acked[k] = v
	}
	return acked, append([]string(nil), r.nacks...)
}

// startBackend serves the gRPC health service on a loopback port, with the
// given status for the whole server ("").
func startBackend(t *testing.T, status healthpb.HealthCheckResponse_ServingStatus) (host string, port int) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", status)
	healthpb.RegisterHealthServer(srv, hs)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().(*net.TCPAddr)
	return addr.IP.String(), addr.Port
}

// TestProxylessGRPCClientAcceptsAndRoutes serves ForProxyless's resources
// from an in-process go-control-plane ADS server to a real grpc-go v1.85
// client dialing "xds:///greeter". The client must ACK every type (no
// NACK) and its RPCs must reach the passing instance only: the critical one
// answers NOT_SERVING, so a single call routed there fails the test.
func TestProxylessGRPCClientAcceptsAndRoutes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	goodHost, goodPort := startBackend(t, healthpb.HealthCheckResponse_SERVING)
	badHost, badPort := startBackend(t, healthpb.HealthCheckResponse_NOT_SERVING)
	snap := &mesh.Snapshot{
		Datacenter: testDC,
		Services: map[string]*mesh.Service{"greeter": {
			Name: "greeter",
			Instances: []mesh.Instance{
				instance("greeter", "greeter-1", "node-1", goodHost, goodPort, mesh.HealthPassing),
				instance("greeter", "greeter-2", "node-2", badHost, badPort, mesh.HealthCritical),
			},
		}},
		Config: mesh.Config{ServiceDefaults: map[string]*mesh.ServiceDefaults{"greeter": {Name: "greeter", Protocol: "grpc"}}},
	}
	res, err := ForProxyless(snap)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := res.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	const nodeID = "proxyless-test"
	snapshots := cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	if err := snapshots.SetSnapshot(ctx, nodeID, cs); err != nil {
		t.Fatal(err)
	}
	rec := &ackRecorder{acked: map[string]string{}}
	xdsServer := server.NewServer(ctx, snapshots, server.CallbackFuncs{StreamRequestFunc: rec.onRequest})
	grpcServer := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(grpcServer, xdsServer)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = grpcServer.Serve(lis) }()
	t.Cleanup(grpcServer.Stop)

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q}
	}`, lis.Addr().String(), nodeID)
	resolver, err := grpcxds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///greeter",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	client := healthpb.NewHealthClient(conn)
	for i := range 20 {
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		if err != nil {
			_, nacks := rec.state()
			t.Fatalf("call %d: %v (NACKs: %v)", i, err, nacks)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("call %d reached the critical instance %s", i, net.JoinHostPort(badHost, strconv.Itoa(badPort)))
		}
	}

	// Every type must have been ACKed at our version. The ACK of the last
	// type may trail the RPCs a little: poll until the deadline.
	for {
		acked, nacks := rec.state()
		if len(nacks) > 0 {
			t.Fatalf("grpc-go NACKed: %v", nacks)
		}
		missing := ""
		for _, typ := range TypeURLs() {
			if acked[typ] != res.Version(typ) {
				missing = fmt.Sprintf("%s acked %q, want %q", typ, acked[typ], res.Version(typ))
				break
			}
		}
		if missing == "" {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not every type was ACKed: %s", missing)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
