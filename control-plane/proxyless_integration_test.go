package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/xds" // the xds:/// resolver and its balancers

	"github.com/seed-a778acb4/consulate/control-plane/server"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// startHealthServer runs a gRPC server with the health service on a
// loopback port until the test ends and returns its port.
func startHealthServer(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	healthpb.RegisterHealthServer(g, health.NewServer())
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

func registerEcho(t *testing.T, c *api.Client, id string, port int) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "echo", Address: "127.0.0.1", Port: port,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// TestProxylessGRPCClient: a grpc-go client with the xds:/// resolver,
// bootstrapped at the control plane, calls a real gRPC server registered in
// Consul and follows the service's instances as they come and go.
func TestProxylessGRPCClient(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	portA, portB := startHealthServer(t), startHealthServer(t)
	registerEcho(t, a.Client, "echo-a", portA)

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "proxyless-client-1", "locality": {}}
	}`, cp.XDS)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///echo", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	// callUntil calls until the set of servers that answered within the
	// last `window` calls equals want.
	callUntil := func(what string, timeout time.Duration, want ...int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		var recent []int
		var lastErr error
		for ctx.Err() == nil {
			var p peer.Peer
			cctx, ccancel := context.WithTimeout(ctx, time.Second)
			_, err := client.Check(cctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p), grpc.WaitForReady(true))
			ccancel()
			if err != nil {
				lastErr = err
				continue
			}
			recent = append(recent, p.Addr.(*net.TCPAddr).Port)
			if len(recent) > 8 {
				recent = recent[1:]
			}
			if len(recent) == 8 && sameSet(recent, want) {
				return
			}
		}
		t.Fatalf("%s: servers answering = %v, want %v (last error: %v)", what, recent, want, lastErr)
	}

	callUntil("first instance", 15*time.Second, portA)
	if st := statusOf(cp.Server, "proxyless-client-1"); len(st) != 1 || st[0].Kind != server.KindProxyless || !strings.HasPrefix(st[0].Peer, "127.0.0.1:") {
		t.Errorf("status = %+v, want one proxyless stream", st)
	}

	registerEcho(t, a.Client, "echo-b", portB)
	callUntil("both instances", 5*time.Second, portA, portB)

	if err := a.Client.Agent().ServiceDeregister("echo-a"); err != nil {
		t.Fatal(err)
	}
	callUntil("the remaining instance", 5*time.Second, portB)
}

// sameSet reports whether got and want hold the same distinct values.
func sameSet(got, want []int) bool {
	seen := map[int]bool{}
	for _, g := range got {
		seen[g] = true
	}
	if len(seen) != len(want) {
		return false
	}
	for _, w := range want {
		if !seen[w] {
			return false
		}
	}
	return true
}
