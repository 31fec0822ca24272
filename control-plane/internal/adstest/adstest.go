// Package adstest holds ADS clients for the control plane's tests, written
// with go-control-plane's generated gRPC stubs: a raw State-of-the-World or
// Delta stream (send exactly what a test wants, ACK or NACK by hand) and a
// Mirror that ACKs everything and keeps the latest resources per type.
//
// Concurrency: each client has one reader goroutine that ends when the
// stream ends; the stream ends when the test's cleanup cancels it. Methods
// may be called from the test goroutine only.
package adstest

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// Type URLs the tests subscribe to.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

// Dial connects to addr and closes the connection at cleanup.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// SotW is a raw State-of-the-World ADS stream.
type SotW struct {
	t      testing.TB
	node   *core.Node
	stream discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	resps  chan *discoverygrpc.DiscoveryResponse
	done   chan struct{}
	cancel context.CancelFunc
}

// NewSotW opens a SotW ADS stream as node; it is closed at cleanup.
func NewSotW(t testing.TB, conn *grpc.ClientConn, node *core.Node) *SotW {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatalf("open SotW stream: %v", err)
	}
	c := &SotW{t: t, node: node, stream: st, resps: make(chan *discoverygrpc.DiscoveryResponse, 4096), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case c.resps <- r:
			default:
				// A test reading nothing while a server hot-loops: drop
				// rather than block; Count still sees them.
			}
		}
	}()
	t.Cleanup(c.Close)
	return c
}

// Close ends the stream and waits for its reader.
func (c *SotW) Close() {
	c.cancel()
	<-c.done
}

// Send sends req with the client's node.
func (c *SotW) Send(req *discoverygrpc.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send %s: %v", req.GetTypeUrl(), err)
	}
}

// Subscribe asks for typeURL (names empty: wildcard).
func (c *SotW) Subscribe(typeURL string, names ...string) {
	c.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// ACK accepts resp.
func (c *SotW) ACK(resp *discoverygrpc.DiscoveryResponse, names ...string) {
	c.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: names})
}

// NACK rejects resp, staying on acceptedVersion.
func (c *SotW) NACK(resp *discoverygrpc.DiscoveryResponse, acceptedVersion, msg string, names ...string) {
	c.Send(&discoverygrpc.DiscoveryRequest{
		TypeUrl: resp.GetTypeUrl(), VersionInfo: acceptedVersion, ResponseNonce: resp.GetNonce(), ResourceNames: names,
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg},
	})
}

// Recv waits up to timeout for the next response; nil if none came.
func (c *SotW) Recv(timeout time.Duration) *discoverygrpc.DiscoveryResponse {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.resps:
		return r
	case <-t.C:
		return nil
	}
}

// Drain returns how many responses arrive within window (a bounded
// observation window for "nothing more is sent", not a synchronisation).
func (c *SotW) Drain(window time.Duration) int {
	n := 0
	t := time.NewTimer(window)
	defer t.Stop()
	for {
		select {
		case <-c.resps:
			n++
		case <-t.C:
			return n
		}
	}
}

// Delta is a raw incremental ADS stream.
type Delta struct {
	t      testing.TB
	node   *core.Node
	stream discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discoverygrpc.DeltaDiscoveryResponse
	done   chan struct{}
	cancel context.CancelFunc
}

// NewDelta opens a Delta ADS stream as node; it is closed at cleanup.
func NewDelta(t testing.TB, conn *grpc.ClientConn, node *core.Node) *Delta {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatalf("open Delta stream: %v", err)
	}
	c := &Delta{t: t, node: node, stream: st, resps: make(chan *discoverygrpc.DeltaDiscoveryResponse, 4096), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(c.done)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			select {
			case c.resps <- r:
			default:
			}
		}
	}()
	t.Cleanup(c.Close)
	return c
}

// Close ends the stream and waits for its reader.
func (c *Delta) Close() {
	c.cancel()
	<-c.done
}

// Send sends req with the client's node.
func (c *Delta) Send(req *discoverygrpc.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send %s: %v", req.GetTypeUrl(), err)
	}
}

// Subscribe asks for typeURL (names empty: wildcard).
func (c *Delta) Subscribe(typeURL string, names ...string) {
	c.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

// ACK accepts resp.
func (c *Delta) ACK(resp *discoverygrpc.DeltaDiscoveryResponse) {
	c.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()})
}

// NACK rejects resp.
func (c *Delta) NACK(resp *discoverygrpc.DeltaDiscoveryResponse, msg string) {
	c.Send(&discoverygrpc.DeltaDiscoveryRequest{
		TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg},
	})
}

// Recv waits up to timeout for the next response; nil if none came.
func (c *Delta) Recv(timeout time.Duration) *discoverygrpc.DeltaDiscoveryResponse {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.resps:
		return r
	case <-t.C:
		return nil
	}
}

// Drain returns how many responses arrive within window.
func (c *Delta) Drain(window time.Duration) int {
	n := 0
	t := time.NewTimer(window)
	defer t.Stop()
	for {
		select {
		case <-c.resps:
			n++
		case <-t.C:
			return n
		}
	}
}
