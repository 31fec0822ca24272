package xds

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// flakyHealth answers Check with SERVING, failing every failEvery-th call
// with UNAVAILABLE (a Trailers-Only response, which grpc-go may retry).
type flakyHealth struct {
	healthpb.UnimplementedHealthServer
	failEvery int64
	calls     atomic.Int64
}

func (h *flakyHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if n := h.calls.Add(1); h.failEvery > 0 && n%h.failEvery == 0 {
		return nil, status.Error(codes.Unavailable, "flaky")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func startHealth(t *testing.T, h healthpb.HealthServer) (string, int) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	a := lis.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

// serveProxyless serves res to node "proxyless-policy" from an in-process
// go-control-plane ADS server and returns a grpc-go client for target.
func serveProxyless(ctx context.Context, t *testing.T, res *Resources, target string) (*grpc.ClientConn, *ackRecorder) {
	t.Helper()
	cs, err := res.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	const nodeID = "proxyless-policy"
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
	conn, err := grpc.NewClient("xds:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, rec
}

// TestProxylessGRPCClientHonoursRouterSplitterRetry: a real grpc-go v1.85
// client ACKs a chain of service-router (header match → subset v2 with
// retries on unavailable), service-splitter (80 % v1 / 20 % v2) and
// service-resolver (subsets, least_request, failover as priorities), splits its calls by weight within tolerance,
// sends the matching calls to v2 only, and retries v2's UNAVAILABLE
// answers (every other call fails there) so that no such call fails.
func TestProxylessGRPCClientHonoursRouterSplitterRetry(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	v1Host, v1Port := startHealth(t, &flakyHealth{})
	v2 := &flakyHealth{failEvery: 2}
	v2Host, v2Port := startHealth(t, v2)
	inst1 := instance("greeter", "greeter-1", "node-1", v1Host, v1Port, mesh.HealthPassing)
	inst1.Meta = map[string]string{"version": "v1"}
	inst2 := instance("greeter", "greeter-2", "node-2", v2Host, v2Port, mesh.HealthPassing)
	inst2.Meta = map[string]string{"version": "v2"}
	snap := &mesh.Snapshot{
		Datacenter: testDC,
		Services:   map[string]*mesh.Service{"greeter": {Name: "greeter", Instances: []mesh.Instance{inst1, inst2}}},
		Config: mesh.Config{
			ServiceDefaults: map[string]*mesh.ServiceDefaults{"greeter": {Name: "greeter", Protocol: "grpc"}},
			// least_request and failover priorities (v2 → v1 at priority
			// 1) must be accepted too.
			Resolvers: map[string]*mesh.ServiceResolver{"greeter": {Name: "greeter", Subsets: map[string]mesh.ResolverSubset{
				"v1": {Filter: "Service.Meta.version == v1"}, "v2": {Filter: "Service.Meta.version == v2"},
			},
				LoadBalancer: &mesh.LoadBalancer{Policy: "least_request", LeastRequestConfig: &mesh.LeastRequestConfig{ChoiceCount: 2}},
				Failover:     map[string]mesh.ResolverFailover{"v2": {ServiceSubset: "v1"}},
			}},
			Routers: map[string]*mesh.ServiceRouter{"greeter": {Name: "greeter", Routes: []mesh.Route{{
				Match:       &mesh.RouteMatch{Header: []mesh.HeaderMatch{{Name: "x-canary", Exact: "1"}}},
				Destination: &mesh.RouteDestination{ServiceSubset: "v2", NumRetries: 3, RetryOn: []string{"unavailable"}},
			}}}},
			Splitters: map[string]*mesh.ServiceSplitter{"greeter": {Name: "greeter", Splits: []mesh.Split{
				{Weight: 80, ServiceSubset: "v1"}, {Weight: 20, ServiceSubset: "v2"},
			}}},
		},
	}
	res, err := ForProxyless(snap)
	if err != nil {
		t.Fatal(err)
	}
	conn, rec := serveProxyless(ctx, t, res, "greeter")
	client := healthpb.NewHealthClient(conn)
	v2Addr := net.JoinHostPort(v2Host, fmt.Sprint(v2Port))

	// Calls matching the router's header go to v2 and are retried.
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "1")
	for i := range 40 {
		var p peer.Peer
		if _, err := client.Check(canary, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p)); err != nil {
			_, nacks := rec.state()
			t.Fatalf("canary call %d: %v (NACKs: %v)", i, err, nacks)
		}
		if p.Addr.String() != v2Addr {
			t.Fatalf("canary call %d reached %s, want v2 at %s", i, p.Addr, v2Addr)
		}
	}
	if n := v2.calls.Load(); n < 60 {
		t.Errorf("v2 saw %d attempts for 40 canary calls failing every other attempt: retries did not happen", n)
	}

	// The rest is split 80/20. v2 still fails every other attempt there,
	// without retries (the default route has none): count where each
	// call went, failures included.
	const calls = 1000
	toV2 := 0
	for range calls {
		var p peer.Peer
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p))
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("split call: %v", err)
		}
		if p.Addr != nil && p.Addr.String() == v2Addr {
			toV2++
		}
	}
	// Binomial(1000, 0.2): σ ≈ 12.6; ±60 is more than 4σ.
	if toV2 < 140 || toV2 > 260 {
		t.Errorf("%d of %d calls reached v2, want 20 %% (140..260)", toV2, calls)
	}
	if _, nacks := rec.state(); len(nacks) > 0 {
		t.Fatalf("grpc-go NACKed: %v", nacks)
	}
	t.Logf("%d of %d split calls reached v2; v2 saw %d attempts in all", toV2, calls, v2.calls.Load())
}
