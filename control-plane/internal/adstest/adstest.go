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

// stream is what SotW and Delta share: one gRPC stream of Req and Resp, a
// reader goroutine that queues responses, and the node stamped on every
// request.
type stream[Req typed, Resp any] struct {
	t      testing.TB
	send   func(Req) error
	stamp  func(Req) // sets the client's node on a request
	resps  chan Resp
	done   chan struct{}
	cancel context.CancelFunc
}

// typed is a request of either protocol.
type typed interface{ GetTypeUrl() string }

// grpcStream is the generated client stream of either protocol.
type grpcStream[Req, Resp any] interface {
	Send(Req) error
	Recv() (Resp, error)
}

// openStream opens a stream with open and starts its reader; it is closed
// at cleanup.
func openStream[Req typed, Resp any](t testing.TB, what string, open func(context.Context) (grpcStream[Req, Resp], error), stamp func(Req)) *stream[Req, Resp] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := open(ctx)
	if err != nil {
		cancel()
		t.Fatalf("open %s stream: %v", what, err)
	}
	c := &stream[Req, Resp]{t: t, send: st.Send, stamp: stamp, resps: make(chan Resp, 4096), done: make(chan struct{}), cancel: cancel}
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
func (c *stream[Req, Resp]) Close() {
	c.cancel()
	<-c.done
}

// Send sends req with the client's node.
func (c *stream[Req, Resp]) Send(req Req) {
	c.t.Helper()
	c.stamp(req)
	if err := c.send(req); err != nil {
		c.t.Fatalf("send %s: %v", req.GetTypeUrl(), err)
	}
}

// Recv waits up to timeout for the next response; the zero Resp (nil) if
// none came.
func (c *stream[Req, Resp]) Recv(timeout time.Duration) Resp {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-c.resps:
		return r
	case <-t.C:
		var zero Resp
		return zero
	}
}

// Drain returns how many responses arrive within window (a bounded
// observation window for "nothing more is sent", not a synchronisation).
func (c *stream[Req, Resp]) Drain(window time.Duration) int {
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

// SotW is a raw State-of-the-World ADS stream.
type SotW struct {
	*stream[*discoverygrpc.DiscoveryRequest, *discoverygrpc.DiscoveryResponse]
}

// NewSotW opens a SotW ADS stream as node; it is closed at cleanup.
func NewSotW(t testing.TB, conn *grpc.ClientConn, node *core.Node) *SotW {
	t.Helper()
	open := func(ctx context.Context) (grpcStream[*discoverygrpc.DiscoveryRequest, *discoverygrpc.DiscoveryResponse], error) {
		return discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	}
	return &SotW{openStream(t, "SotW", open, func(r *discoverygrpc.DiscoveryRequest) { r.Node = node })}
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

// Delta is a raw incremental ADS stream.
type Delta struct {
	*stream[*discoverygrpc.DeltaDiscoveryRequest, *discoverygrpc.DeltaDiscoveryResponse]
}

// NewDelta opens a Delta ADS stream as node; it is closed at cleanup.
func NewDelta(t testing.TB, conn *grpc.ClientConn, node *core.Node) *Delta {
	t.Helper()
	open := func(ctx context.Context) (grpcStream[*discoverygrpc.DeltaDiscoveryRequest, *discoverygrpc.DeltaDiscoveryResponse], error) {
		return discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	}
	return &Delta{openStream(t, "Delta", open, func(r *discoverygrpc.DeltaDiscoveryRequest) { r.Node = node })}
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
