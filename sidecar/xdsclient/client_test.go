package xdsclient_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient/xdstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const nodeID = "web-1-sidecar-proxy"

// meshSnapshot is the shape a sidecar receives: a public HTTP listener
// routed to an EDS cluster, and an outbound TCP listener to a static one.
func meshSnapshot(t *testing.T, version string, webPorts ...uint32) *cachev3.Snapshot {
	t.Helper()
	eps := make([]dt.HostPort, 0, len(webPorts))
	for _, p := range webPorts {
		eps = append(eps, dt.HostPort{Host: "127.0.0.1", Port: p})
	}
	return snapshot(t, version, map[string][]types.Resource{
		resourcev3.ListenerType: {
			dt.HTTPListener("public", "127.0.0.1", 21000, "web"),
			dt.TCPListener("db", "127.0.0.1", 9191, "db"),
		},
		resourcev3.RouteType:    {dt.Route("web", "web")},
		resourcev3.ClusterType:  {dt.EDSCluster("web"), dt.StaticCluster("db", dt.HostPort{Host: "127.0.0.1", Port: 5432})},
		resourcev3.EndpointType: {dt.CLA("web", eps...)},
	})
}

var snapshot = xdstest.Snapshot

// wantMesh is meshSnapshot decoded.
func wantMesh(webPorts ...string) *config.Config {
	web := &config.Cluster{
		Name: "web", ConnectTimeout: time.Second, LeastRequestChoiceCount: 2,
		RingHashMinSize: 1024, RingHashMaxSize: 8 << 20, MaglevTableSize: 65537, HealthyPanicThreshold: 50,
		CircuitBreakers: config.CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3},
		EDSServiceName:  "web",
	}
	for _, p := range webPorts {
		web.Endpoints = append(web.Endpoints, config.Endpoint{Address: "127.0.0.1:" + p, Weight: 1, Health: config.HealthHealthy})
	}
	db := *web
	db.Name, db.ConnectTimeout, db.EDSServiceName = "db", 5*time.Second, ""
	db.Endpoints = []config.Endpoint{{Address: "127.0.0.1:5432", Weight: 1, Health: config.HealthHealthy}}
	return &config.Config{
		Listeners: map[string]*config.Listener{
			"public": {Name: "public", Address: "127.0.0.1:21000", PerConnectionBufferLimitBytes: 1 << 20,
				HTTP: &config.HTTPConnectionManager{StatPrefix: "web", RouteConfigName: "web", StreamIdleTimeout: 5 * time.Minute, GenerateRequestID: true}},
			"db": {Name: "db", Address: "127.0.0.1:9191", PerConnectionBufferLimitBytes: 1 << 20,
				TCP: &config.TCPProxy{StatPrefix: "db", Cluster: "db", IdleTimeout: time.Hour}},
		},
		Routes: map[string]*config.RouteConfig{"web": {Name: "web", VirtualHosts: []*config.VirtualHost{{
			Name: "web", Domains: []string{"*"},
			Routes: []*config.Route{{
				Match:   config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true},
				Forward: &config.RouteAction{Cluster: "web", Timeout: 15 * time.Second},
			}},
		}}}},
		Clusters: map[string]*config.Cluster{"web": web, "db": &db},
	}
}

var ignoreVersions = cmpopts.IgnoreFields(config.Config{}, "Versions")

// harness runs a client against cp and collects applied configs.
type harness struct {
	client  *xdsclient.Client
	applied chan *config.Config
	reg     *prometheus.Registry
	cancel  context.CancelFunc
	done    chan struct{}
}

func startClient(t *testing.T, p xdsclient.Protocol, addr string, apply func(*config.Config) error) *harness {
	t.Helper()
	h := &harness{applied: make(chan *config.Config, 64), reg: prometheus.NewRegistry(), done: make(chan struct{})}
	c, err := xdsclient.New(xdsclient.Options{
		NodeID: nodeID, ControlPlane: addr, Protocol: p,
		Logger: zaptest.NewLogger(t), Registerer: h.reg,
		BackoffBase: 20 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Apply: func(_ context.Context, cfg *config.Config) error {
			if apply != nil {
				if err := apply(cfg); err != nil {
					return err
				}
			}
			h.applied <- cfg
			return nil
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.client = c
	ctx, cancel := context.WithCancel(t.Context())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	<-h.done
}

// next returns the next applied config once it is published (Apply runs
// just before the atomic swap), or fails after d.
func (h *harness) next(t *testing.T, d time.Duration) *config.Config {
	t.Helper()
	select {
	case cfg := <-h.applied:
		xdstest.WaitFor(t, "the applied config to be published", d, func() bool { return h.client.Current() == cfg })
		return cfg
	case <-time.After(d):
		t.Fatalf("no config applied within %s", d)
		return nil
	}
}

// gauge reads a gauge from the registry.
func (h *harness) gauge(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// counter reads a counter with the given type label from the registry.
func (h *harness) counter(t *testing.T, name, typ string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "type" && l.GetValue() == typ {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

var protocols = []xdsclient.Protocol{xdsclient.Delta, xdsclient.SotW}

func TestFullConfigAndUpdate(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			cp := xdstest.Start(t, "127.0.0.1:0")
			cp.Set(nodeID, meshSnapshot(t, "v1", 8080))
			h := startClient(t, p, cp.Addr, nil)

			got := h.next(t, 10*time.Second)
			if diff := cmp.Diff(wantMesh("8080"), got, ignoreVersions); diff != "" {
				t.Fatalf("first config (-want +got):\n%s", diff)
			}
			if !h.client.Ready() || h.client.Current() != got {
				t.Fatalf("Ready=%v, Current is the applied config=%v", h.client.Ready(), h.client.Current() == got)
			}
			if p == xdsclient.SotW {
				if v := got.Versions[xdsclient.ListenerType]; v != "v1" {
					t.Errorf("listener version = %q, want v1", v)
				}
			}

			// An endpoint change swaps in a new complete config.
			cp.Set(nodeID, meshSnapshot(t, "v2", 8080, 8081))
			got = h.next(t, 10*time.Second)
			if diff := cmp.Diff(wantMesh("8080", "8081"), got, ignoreVersions); diff != "" {
				t.Fatalf("updated config (-want +got):\n%s", diff)
			}
			if h.client.Current() != got {
				t.Errorf("Current is not the updated config")
			}
			a := h.client.Applied()
			if len(a.Resources[xdsclient.ListenerType]) != 2 {
				t.Fatalf("Applied resources: %d listeners, want 2", len(a.Resources[xdsclient.ListenerType]))
			}
			// Resources are kept as received and decoded when read.
			for _, m := range a.Resources[xdsclient.ListenerType] {
				l, ok := m.ProtoReflect().Interface().(*listenerv3.Listener)
				if !ok || l.GetName() == "" || l.GetAddress() == nil {
					t.Errorf("applied listener decodes to %v", m.ProtoReflect().Interface())
				}
			}
			if b, err := protojson.Marshal(a.Resources[xdsclient.ClusterType][0]); err != nil || !strings.Contains(string(b), `"name"`) {
				t.Errorf("applied cluster as JSON: %s, %v", b, err)
			}
		})
	}
}

func TestUnsupportedFieldIsNACKedAndOldConfigStays(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			cp := xdstest.Start(t, "127.0.0.1:0")
			cp.Set(nodeID, meshSnapshot(t, "v1", 8080))
			h := startClient(t, p, cp.Addr, nil)
			good := h.next(t, 10*time.Second)

			// Same endpoints; only the web cluster gains a field we do not implement.
			badWeb := dt.EDSCluster("web")
			badWeb.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
			cp.Set(nodeID, snapshot(t, "v2", map[string][]types.Resource{
				resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web"), dt.TCPListener("db", "127.0.0.1", 9191, "db")},
				resourcev3.RouteType:    {dt.Route("web", "web")},
				resourcev3.ClusterType:  {badWeb, dt.StaticCluster("db", dt.HostPort{Host: "127.0.0.1", Port: 5432})},
				resourcev3.EndpointType: {dt.CLA("web", dt.HostPort{Host: "127.0.0.1", Port: 8080})},
			}))
			const want = `cluster "web": field transport_socket is not supported`
			xdstest.WaitFor(t, "a NACK naming the field", 10*time.Second, func() bool {
				for _, n := range cp.NACKs() {
					if strings.Contains(n, want) {
						return true
					}
				}
				return false
			})
			if h.client.Current() != good {
				t.Fatalf("config changed after a rejected update")
			}
			select {
			case cfg := <-h.applied:
				t.Fatalf("a config was applied after the NACK: %v", cfg.Versions)
			default:
			}
			if r := h.client.Status().Rejected["cluster"]; !strings.Contains(r.Error, want) || r.Version != "v2" {
				t.Errorf("Status().Rejected[cluster] = %+v, want version v2 and the error", r)
			}
			if n := h.counter(t, "consulate_sidecar_xds_rejections_total", "cluster"); n < 1 {
				t.Errorf("rejections_total{type=cluster} = %v, want >= 1", n)
			}

			// The control plane fixes it: the client is not stuck.
			cp.Set(nodeID, meshSnapshot(t, "v3", 8082))
			got := h.next(t, 10*time.Second)
			if diff := cmp.Diff(wantMesh("8082"), got, ignoreVersions); diff != "" {
				t.Fatalf("config after the fix (-want +got):\n%s", diff)
			}
			xdstest.WaitFor(t, "the rejection to clear once clusters are ACKed again", 10*time.Second, func() bool {
				return len(h.client.Status().Rejected) == 0
			})
		})
	}
}

func TestApplyErrorIsNACKed(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			cp := xdstest.Start(t, "127.0.0.1:0")
			cp.Set(nodeID, meshSnapshot(t, "v1", 8080))
			h := startClient(t, p, cp.Addr, func(cfg *config.Config) error {
				if len(cfg.Clusters["web"].Endpoints) > 1 {
					return errors.New("listener public: address in use")
				}
				return nil
			})
			good := h.next(t, 10*time.Second)
			cp.Set(nodeID, meshSnapshot(t, "v2", 8080, 8081))
			xdstest.WaitFor(t, "a NACK with the apply error", 10*time.Second, func() bool {
				for _, n := range cp.NACKs() {
					if strings.Contains(n, "applying config: listener public: address in use") {
						return true
					}
				}
				return false
			})
			if h.client.Current() != good {
				t.Fatalf("config changed after the apply callback refused it")
			}
		})
	}
}

func TestNotReadyUntilComplete(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			cp := xdstest.Start(t, "127.0.0.1:0")
			// The listener names a route configuration that does not exist
			// yet: the client must wait (Envoy's warming) and stay unready.
			cp.Set(nodeID, snapshot(t, "v1", map[string][]types.Resource{
				resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web")},
				resourcev3.ClusterType:  {dt.StaticCluster("web", dt.HostPort{Host: "127.0.0.1", Port: 8080})},
			}))
			h := startClient(t, p, cp.Addr, nil)
			xdstest.WaitFor(t, "the stream to connect", 10*time.Second, func() bool {
				return h.gauge(t, "consulate_sidecar_xds_connected") == 1
			})
			select {
			case <-h.applied:
				t.Fatalf("config applied while the route configuration is missing")
			case <-time.After(300 * time.Millisecond):
			}
			if h.client.Ready() || h.client.Current() != nil {
				t.Fatalf("Ready before the first complete config")
			}
			if st := h.client.Status(); !st.Connected || !slices.Contains(st.Waiting, `route "web"`) {
				t.Errorf("Status() = %+v, want connected and waiting for route \"web\"", st)
			}
			cp.Set(nodeID, snapshot(t, "v2", map[string][]types.Resource{
				resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web")},
				resourcev3.RouteType:    {dt.Route("web", "web")},
				resourcev3.ClusterType:  {dt.StaticCluster("web", dt.HostPort{Host: "127.0.0.1", Port: 8080})},
			}))
			got := h.next(t, 10*time.Second)
			if got.Routes["web"] == nil {
				t.Fatalf("complete config not applied: routes=%v", got.Routes)
			}
			// The apply callback runs before the config is published and the
			// client marked ready: wait for both rather than race them.
			xdstest.WaitFor(t, "ready and the ready gauge at 1", 10*time.Second, func() bool {
				return h.client.Ready() && h.gauge(t, "consulate_sidecar_xds_ready") == 1
			})
		})
	}
}

func TestReconnectKeepsLastConfig(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			cp := xdstest.Start(t, "127.0.0.1:0")
			addr := cp.Addr
			cp.Set(nodeID, meshSnapshot(t, "v1", 8080))
			h := startClient(t, p, addr, nil)
			first := h.next(t, 10*time.Second)

			cp.Stop()
			xdstest.WaitFor(t, "the client to notice the disconnect", 10*time.Second, func() bool {
				return h.gauge(t, "consulate_sidecar_xds_connected") == 0
			})
			// Static stability: while the control plane is away the last
			// good config keeps serving.
			time.Sleep(300 * time.Millisecond) // a few reconnect attempts
			if h.client.Current() != first || !h.client.Ready() {
				t.Fatalf("lost the last good config while the control plane was away")
			}

			cp2 := xdstest.Start(t, addr)
			cp2.Set(nodeID, meshSnapshot(t, "v9", 9090))
			got := h.next(t, 15*time.Second)
			if diff := cmp.Diff(wantMesh("9090"), got, ignoreVersions); diff != "" {
				t.Fatalf("config from the restarted control plane (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInitialFetchTimeout: a load assignment the control plane never sends
// stops blocking after the cluster's eds_config.initial_fetch_timeout, as
// in Envoy; when it arrives later it is applied.
func TestInitialFetchTimeout(t *testing.T) {
	for _, p := range protocols {
		t.Run(string(p), func(t *testing.T) {
			web := dt.EDSCluster("web")
			web.EdsClusterConfig.EdsConfig.InitialFetchTimeout = durationpb.New(300 * time.Millisecond)
			res := func() map[string][]types.Resource {
				return map[string][]types.Resource{
					resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web")},
					resourcev3.RouteType:    {dt.Route("web", "web")},
					resourcev3.ClusterType:  {web},
				}
			}
			cp := xdstest.Start(t, "127.0.0.1:0")
			cp.Set(nodeID, snapshot(t, "v1", res()))
			h := startClient(t, p, cp.Addr, nil)
			start := time.Now()
			got := h.next(t, 10*time.Second)
			if waited := time.Since(start); waited < 250*time.Millisecond {
				t.Errorf("applied after %s, before the 300ms initial fetch timeout", waited)
			}
			if c := got.Clusters["web"]; c == nil || len(c.Endpoints) != 0 {
				t.Fatalf("cluster web = %+v, want it without endpoints", c)
			}

			withEndpoints := res()
			withEndpoints[resourcev3.EndpointType] = []types.Resource{dt.CLA("web", dt.HostPort{Host: "127.0.0.1", Port: 8080})}
			cp.Set(nodeID, snapshot(t, "v2", withEndpoints))
			got = h.next(t, 10*time.Second)
			if n := len(got.Clusters["web"].Endpoints); n != 1 {
				t.Fatalf("web has %d endpoints after the load assignment arrived, want 1", n)
			}
		})
	}
}

// TestRepeatedNACKIsPaced: go-control-plane's SnapshotCache answers a SotW
// NACK by resending the same version at once; the client must not spin
// with it (DESIGN.md, "facts learned"), yet keep answering.
func TestRepeatedNACKIsPaced(t *testing.T) {
	cp := xdstest.Start(t, "127.0.0.1:0")
	cp.Set(nodeID, meshSnapshot(t, "v1", 8080))
	h := startClient(t, xdsclient.SotW, cp.Addr, nil)
	h.next(t, 10*time.Second)

	bad := dt.EDSCluster("web")
	bad.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls"}
	cp.Set(nodeID, snapshot(t, "v2", map[string][]types.Resource{
		resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web"), dt.TCPListener("db", "127.0.0.1", 9191, "db")},
		resourcev3.RouteType:    {dt.Route("web", "web")},
		resourcev3.ClusterType:  {bad, dt.StaticCluster("db", dt.HostPort{Host: "127.0.0.1", Port: 5432})},
		resourcev3.EndpointType: {dt.CLA("web", dt.HostPort{Host: "127.0.0.1", Port: 8080})},
	}))
	xdstest.WaitFor(t, "the first NACK", 10*time.Second, func() bool { return len(cp.NACKs()) > 0 })
	time.Sleep(time.Second) // the window in which an unpaced client NACKs thousands of times
	n := len(cp.NACKs())
	// Immediately, then after 100, 200, 400 ms (~700 ms): 4 or 5 in 1 s.
	if n < 2 || n > 8 {
		t.Fatalf("%d NACKs in ~1s, want the resends answered but paced (2..8)", n)
	}
}
