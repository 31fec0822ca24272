package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const (
	clusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	endpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	routeType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
)

var allTypes = []string{clusterType, endpointType, listenerType, routeType}

// client is a simulated sidecar: one ADS stream (SotW or Delta) that
// subscribes to every type (wildcard), ACKs every response at once, keeps
// its clusters and load assignments decoded, and counts what it receives.
// Its reader goroutine is the only writer of its state besides expect.
type client struct {
	id    string
	delta bool
	p     int // sidecar index in the topology

	bytes, resources, responses atomic.Int64

	mu        sync.Mutex
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	seen      map[string]bool
	ready     chan struct{} // closed when every type has been received
	want      func(*client) bool
	metAt     time.Time
	met       chan struct{}
}

func newClient(id string, p int, delta bool) *client {
	return &client{id: id, p: p, delta: delta, clusters: map[string]*clusterv3.Cluster{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{}, seen: map[string]bool{}, ready: make(chan struct{})}
}

// expect arms a condition on the client's state; the returned channel is
// closed once a response made it true and its ACK was sent. It reports
// false if the condition already holds (the change would be invisible).
func (c *client) expect(cond func(*client) bool) (<-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want, c.metAt, c.met = cond, time.Time{}, make(chan struct{})
	return c.met, !cond(c)
}

// metSince is how long after t0 the armed condition was met.
func (c *client) metSince(t0 time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metAt.Sub(t0)
}

// acked runs after the ACK of a response of typ was sent.
func (c *client) acked(typ string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seen[typ] {
		c.seen[typ] = true
		if len(c.seen) == len(allTypes) {
			close(c.ready)
		}
	}
	if c.want != nil && c.metAt.IsZero() && c.want(c) {
		c.metAt = time.Now()
		close(c.met)
	}
}

func (c *client) count(msg proto.Message, resources int) {
	c.bytes.Add(int64(proto.Size(msg)))
	c.resources.Add(int64(resources))
	c.responses.Add(1)
}

func (c *client) node() *core.Node {
	return &core.Node{Id: c.id, Cluster: "bench", UserAgentName: "consulate-bench"}
}

// run holds the stream until ctx is done or the stream fails.
func (c *client) run(ctx context.Context, conn *grpc.ClientConn) error {
	ads := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
	if c.delta {
		return c.runDelta(ctx, ads)
	}
	return c.runSotW(ctx, ads)
}

func (c *client) runSotW(ctx context.Context, ads discoverygrpc.AggregatedDiscoveryServiceClient) error {
	st, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for _, typ := range allTypes {
		if err := st.Send(&discoverygrpc.DiscoveryRequest{Node: c.node(), TypeUrl: typ}); err != nil {
			return err
		}
	}
	for {
		r, err := st.Recv()
		if err != nil {
			return err
		}
		c.count(r, len(r.GetResources()))
		c.mu.Lock()
		switch r.GetTypeUrl() {
		case clusterType:
			c.clusters = map[string]*clusterv3.Cluster{}
			for _, a := range r.GetResources() {
				if m := decode[clusterv3.Cluster](a); m != nil {
					c.clusters[m.GetName()] = m
				}
			}
		case endpointType:
			c.endpoints = map[string]*endpointv3.ClusterLoadAssignment{}
			for _, a := range r.GetResources() {
				if m := decode[endpointv3.ClusterLoadAssignment](a); m != nil {
					c.endpoints[m.GetClusterName()] = m
				}
			}
		}
		c.mu.Unlock()
		if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(),
			ResponseNonce: r.GetNonce()}); err != nil {
			return err
		}
		c.acked(r.GetTypeUrl())
	}
}

func (c *client) runDelta(ctx context.Context, ads discoverygrpc.AggregatedDiscoveryServiceClient) error {
	st, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	for _, typ := range allTypes {
		if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: c.node(), TypeUrl: typ}); err != nil {
			return err
		}
	}
	for {
		r, err := st.Recv()
		if err != nil {
			return err
		}
		c.count(r, len(r.GetResources()))
		c.mu.Lock()
		for _, res := range r.GetResources() {
			switch r.GetTypeUrl() {
			case clusterType:
				if m := decode[clusterv3.Cluster](res.GetResource()); m != nil {
					c.clusters[res.GetName()] = m
				}
			case endpointType:
				if m := decode[endpointv3.ClusterLoadAssignment](res.GetResource()); m != nil {
					c.endpoints[res.GetName()] = m
				}
			}
		}
		for _, name := range r.GetRemovedResources() {
			delete(c.clusters, name)
			delete(c.endpoints, name)
		}
		c.mu.Unlock()
		if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}); err != nil {
			return err
		}
		c.acked(r.GetTypeUrl())
	}
}

// decode unmarshals a resource, nil if it is not a T.
func decode[T any, P interface {
	*T
	proto.Message
}](a *anypb.Any) P {
	m := P(new(T))
	if a.UnmarshalTo(m) != nil {
		return nil
	}
	return m
}
