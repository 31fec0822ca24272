package xdsclient

import (
	"context"
	"fmt"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/anypb"

	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// BenchmarkEndpointUpdate is the common update on a running sidecar: one
// load assignment (10 endpoints) changes in a config of 100 upstreams
// (listener, route, EDS cluster each). It measures decoding, the warming
// check, building the whole config and publishing it.
func BenchmarkEndpointUpdate(b *testing.B) {
	c, err := New(Options{NodeID: "bench", ControlPlane: "127.0.0.1:1", Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	st := newStore()
	ls, rs, cs, es := map[string]*resource{}, map[string]*resource{}, map[string]*resource{}, map[string]*resource{}
	for i := range 100 {
		name := fmt.Sprintf("svc-%d", i)
		for _, x := range []struct {
			m       map[string]*resource
			typeURL string
			a       *anypb.Any
		}{
			{ls, ListenerType, dt.MustAny(dt.HTTPListener(name, "127.0.0.1", uint32(20000+i), name))},
			{rs, RouteType, dt.MustAny(dt.Route(name, name))},
			{cs, ClusterType, dt.MustAny(dt.EDSCluster(name))},
			{es, EndpointType, dt.MustAny(dt.CLA(name, dt.HostPort{Host: "10.0.0.1", Port: 1}))},
		} {
			r, err := decodeResource(x.typeURL, "", x.a)
			if err != nil {
				b.Fatal(err)
			}
			x.m[r.name] = r
		}
	}
	st = st.with(ListenerType, ls, "1").with(RouteType, rs, "1").with(ClusterType, cs, "1").with(EndpointType, es, "1")
	var eps []dt.HostPort
	for i := range 10 {
		eps = append(eps, dt.HostPort{Host: fmt.Sprintf("10.0.1.%d", i+1), Port: 21000})
	}
	u := &update{typeURL: EndpointType, version: "2", resources: []wireResource{{name: "svc-7", version: "2", any: dt.MustAny(dt.CLA("svc-7", eps...))}}}
	var last *store
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		last = nil // force a real apply every time
		if _, _, err := c.handle(ctx, st, u, &last, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// discardDelta is a Delta ADS client stream that drops what is sent.
type discardDelta struct {
	discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	sent int
}

func (d *discardDelta) Send(*discoveryv3.DeltaDiscoveryRequest) error { d.sent++; return nil }

// BenchmarkFirstConfig10kClusters is a sidecar's start against a large
// mesh, in process: one Delta response with 10,000 EDS clusters, one with
// a listener and one with its route configuration, then the 10,000 load
// assignments in ten responses of 1,000. Every response goes through the
// session as the stream loop runs it (decode, warming, subscriptions,
// ACK), followed by the loop's fetch-timeout deadline. One op ends with
// the first complete config published.
func BenchmarkFirstConfig10kClusters(b *testing.B) {
	const n, chunk = 10000, 1000
	var clusters, endpoints []wireResource
	for i := range n {
		name := fmt.Sprintf("svc-%05d", i)
		clusters = append(clusters, wireResource{name: name, version: "1", any: dt.MustAny(dt.EDSCluster(name))})
		endpoints = append(endpoints, wireResource{name: name, version: "1",
			any: dt.MustAny(dt.CLA(name, dt.HostPort{Host: "10.0.0.1", Port: uint32(20000 + i%1000)}))})
	}
	updates := []*update{
		{typeURL: ClusterType, version: "1", nonce: "c", resources: clusters},
		{typeURL: ListenerType, version: "1", nonce: "l", resources: []wireResource{
			{name: "web", version: "1", any: dt.MustAny(dt.HTTPListener("web", "127.0.0.1", 15001, "web"))}}},
		{typeURL: RouteType, version: "1", nonce: "r", resources: []wireResource{
			{name: "web", version: "1", any: dt.MustAny(dt.Route("web", "svc-00000"))}}},
	}
	for i := 0; i < n; i += chunk {
		updates = append(updates, &update{typeURL: EndpointType, version: "1", nonce: fmt.Sprint("e", i), resources: endpoints[i : i+chunk]})
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := New(Options{NodeID: "bench", ControlPlane: "127.0.0.1:1", Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		var last *store
		ss := &session{c: c, s: &deltaStream{stream: &discardDelta{}, subs: map[string][]string{}}, last: &last, st: newStore(),
			subs: make(map[string][]string), lastNack: make(map[string]nackKey),
			repeats: make(map[string]int), pending: make(map[string]*pendingNack), warm: newWarming(nil)}
		for _, u := range updates {
			if err := ss.onUpdate(ctx, u); err != nil {
				b.Fatal(err)
			}
			_ = ss.warm.deadline(ss.st)
		}
		a := c.Current()
		if a == nil || len(a.Clusters) != n || len(a.Clusters["svc-09999"].Endpoints) != 1 {
			b.Fatalf("no complete config after the last response")
		}
	}
}
