package decode_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a778acb4/consulate/sidecar/decode"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// The fuzz targets feed arbitrary wire bytes that parse as the resource to
// the decoder; it may reject them but must never panic. Committed seeds
// live in testdata/fuzz/<target>/.

func FuzzDecodeListener(f *testing.F) {
	for _, l := range []*listenerv3.Listener{
		dt.HTTPListener("public", "0.0.0.0", 21000, "web"),
		dt.TCPListener("db", "127.0.0.1", 9191, "postgres"),
	} {
		b, err := proto.Marshal(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var l listenerv3.Listener
		if err := proto.Unmarshal(data, &l); err != nil {
			return
		}
		got, err := decode.Listener(&l)
		if err == nil && (got == nil || (got.HTTP == nil) == (got.TCP == nil)) {
			t.Fatalf("decoded listener must have exactly one of HTTP and TCP: %+v", got)
		}
	})
}

func FuzzDecodeRouteConfiguration(f *testing.F) {
	rc := dt.Route("web", "web", "web", "*.web")
	b, err := proto.Marshal(rc)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rc routev3.RouteConfiguration
		if err := proto.Unmarshal(data, &rc); err != nil {
			return
		}
		got, err := decode.RouteConfiguration(&rc)
		if err != nil {
			return
		}
		for _, vh := range got.VirtualHosts {
			for _, r := range vh.Routes {
				n := 0
				for _, set := range []bool{r.Forward != nil, r.Redirect != nil, r.DirectResponse != nil} {
					if set {
						n++
					}
				}
				if n != 1 {
					t.Fatalf("route %q has %d actions, want 1", r.Name, n)
				}
			}
		}
	})
}

func FuzzDecodeCluster(f *testing.F) {
	for _, c := range []*clusterv3.Cluster{
		dt.EDSCluster("web"),
		dt.StaticCluster("local_app", dt.HostPort{Host: "127.0.0.1", Port: 8080}),
	} {
		b, err := proto.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c clusterv3.Cluster
		if err := proto.Unmarshal(data, &c); err != nil {
			return
		}
		got, err := decode.Cluster(&c)
		if err == nil && (got.ConnectTimeout <= 0 || got.Name == "") {
			t.Fatalf("accepted cluster without a name or connect timeout: %+v", got)
		}
	})
}
