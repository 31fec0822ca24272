package xdsclient

import (
	"context"
	"fmt"
	"testing"

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
