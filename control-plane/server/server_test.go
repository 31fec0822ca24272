package server

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
)

const recvTimeout = 5 * time.Second

// quiet is the observation window in which "nothing more is sent" is checked.
const quiet = 400 * time.Millisecond

func TestNACKKeepsProxyAndDoesNotLoop(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	before := model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {8080}, "db": {5432}})
	bad := model(2, map[string][]string{id: {"api", "db"}}, map[string][]int{"api": {8080}, "db": {5432}})
	fixed := model(3, map[string][]string{id: {"db"}}, map[string][]int{"api": {8080}, "db": {5432}})

	t.Run("sotw", func(t *testing.T) {
		ts := startServer(t, newFakeSource(before), Options{})
		c := adstest.NewSotW(t, adstest.Dial(t, ts.addr), sidecarNode(id))
		c.Subscribe(adstest.ClusterType)
		r1 := c.Recv(recvTimeout)
		if r1 == nil {
			t.Fatal("no first CDS response")
		}
		c.ACK(r1)
		ts.src.Set(bad)
		r2 := c.Recv(recvTimeout)
		if r2 == nil || r2.GetVersionInfo() == r1.GetVersionInfo() {
			t.Fatalf("no new CDS version after the model changed (got %v)", r2)
		}
		c.NACK(r2, r1.GetVersionInfo(), "cluster db: unsupported field")
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d responses after the NACK within %v; want 0 (hot loop)", n, quiet)
		}
		checkNACK(t, ts, id, "sotw", r1.GetVersionInfo(), r2.GetVersionInfo())

		ts.src.Set(fixed)
		r3 := c.Recv(recvTimeout)
		if r3 == nil || r3.GetVersionInfo() == r2.GetVersionInfo() {
			t.Fatalf("no new CDS version after the fix (got %v)", r3)
		}
		c.ACK(r3)
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d responses after ACK; want 0", n)
		}
	})

	t.Run("delta", func(t *testing.T) {
		ts := startServer(t, newFakeSource(before), Options{})
		c := adstest.NewDelta(t, adstest.Dial(t, ts.addr), sidecarNode(id))
		c.Subscribe(adstest.ClusterType)
		r1 := c.Recv(recvTimeout)
		if r1 == nil {
			t.Fatal("no first CDS response")
		}
		c.ACK(r1)
		ts.src.Set(bad)
		r2 := c.Recv(recvTimeout)
		if r2 == nil {
			t.Fatal("no CDS update after the model changed")
		}
		c.NACK(r2, "cluster db: unsupported field")
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d responses after the NACK within %v; want 0 (hot loop)", n, quiet)
		}
		checkNACK(t, ts, id, "delta", r1.GetSystemVersionInfo(), r2.GetSystemVersionInfo())
		ts.src.Set(fixed)
		if r3 := c.Recv(recvTimeout); r3 == nil {
			t.Fatal("no CDS update after the fix")
		}
	})
}

// checkNACK checks the NACK's log line, metric and status.
func checkNACK(t *testing.T, ts *testServer, id, protocol, accepted, rejected string) {
	t.Helper()
	entries := ts.logs.FilterMessage("NACK").All()
	if len(entries) != 1 {
		t.Fatalf("%d NACK log entries, want 1", len(entries))
	}
	f := entries[0].ContextMap()
	want := map[string]any{"node_id": id, "protocol": protocol, "type": adstest.ClusterType,
		"version": rejected, "error_detail": "cluster db: unsupported field", "accepted_version": accepted}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("NACK log %s = %v, want %v", k, f[k], v)
		}
	}
	if names, _ := f["resources"].([]any); !containsAny(names, "db") {
		t.Errorf("NACK log resources = %v, want it to name db", f["resources"])
	}
	if got := value(ts.metrics.NACKs.WithLabelValues("Cluster")); got != 1 {
		t.Errorf("NACK metric = %v, want 1", got)
	}
	st := ts.Status()
	if len(st) != 1 {
		t.Fatalf("status has %d proxies, want 1", len(st))
	}
	cds := st[0].Types[adstest.ClusterType]
	if cds.LastNACK == nil {
		t.Fatal("status has no NACK")
	}
	got := struct{ Node, Kind, Proto, Sent, Acked, Nacked, Err string }{st[0].NodeID, string(st[0].Kind), string(st[0].Protocol),
		cds.LastSentVersion, cds.LastACKedVersion, cds.LastNACK.Version, cds.LastNACK.Error}
	wantSt := struct{ Node, Kind, Proto, Sent, Acked, Nacked, Err string }{id, "sidecar", protocol, rejected, accepted, rejected, "cluster db: unsupported field"}
	if diff := cmp.Diff(wantSt, got); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func containsAny(xs []any, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestBareSnapshotCacheHotLoops documents why nackGuard exists: without it,
// go-control-plane v0.14's SnapshotCache answers a SotW NACK with the same
// rejected version at once, every time.
func TestBareSnapshotCacheHotLoops(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	snap, _ := fakeTranslator{}.Sidecar(model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {1}}), id)
	c := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	if err := c.SetSnapshot(context.Background(), id, snap); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(g, serverv3.NewServer(ctx, c, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	defer g.Stop()
	defer cancel()

	cl := adstest.NewSotW(t, adstest.Dial(t, lis.Addr().String()), sidecarNode(id))
	defer cl.Close()
	cl.Subscribe(adstest.ClusterType)
	r := cl.Recv(recvTimeout)
	if r == nil {
		t.Fatal("no response")
	}
	// A client that NACKs every response, as a client would that cannot
	// accept this version.
	resends := 0
	for range 50 {
		cl.NACK(r, "", "rejected")
		if r = cl.Recv(recvTimeout); r == nil {
			break
		}
		resends++
	}
	if resends != 50 {
		t.Fatalf("bare cache re-sent %d times after 50 NACKs; the guard may no longer be needed", resends)
	}
}

func TestUnchangedProxyNotRepushed(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	proxies := map[string][]string{id: {"api"}}
	for _, protocol := range []string{"sotw", "delta"} {
		t.Run(protocol, func(t *testing.T) {
			ts := startServer(t, newFakeSource(model(1, proxies, map[string][]int{"api": {8080}})), Options{})
			m := adstest.NewMirror(t, adstest.Dial(t, ts.addr), sidecarNode(id), protocol, adstest.ClusterType, adstest.EndpointType)
			ctx, cancel := context.WithTimeout(t.Context(), recvTimeout)
			defer cancel()
			v1, err := m.WaitFor(ctx, "CDS and EDS", func(v adstest.View) bool { return len(v.Versions) == 2 })
			if err != nil {
				t.Fatal(err)
			}
			// Same content, new index, plus an unrelated service.
			ts.src.Set(model(2, proxies, map[string][]int{"api": {8080}, "other": {1}}))
			waitUntil(t, recvTimeout, "a rebuild that changes nothing", func() bool {
				return value(ts.metrics.SnapshotsUnchanged) >= 1
			})
			if got := m.View().Responses; got != v1.Responses {
				t.Fatalf("responses went from %d to %d for unchanged content", v1.Responses, got)
			}
			// An endpoint change moves EDS only.
			ts.src.Set(model(3, proxies, map[string][]int{"api": {8080, 8081}}))
			v3, err := m.WaitFor(ctx, "new EDS version", func(v adstest.View) bool {
				return v.Versions[adstest.EndpointType] != v1.Versions[adstest.EndpointType]
			})
			if err != nil {
				t.Fatal(err)
			}
			if v3.Responses != v1.Responses+1 {
				t.Errorf("responses %d → %d; want exactly one (EDS)", v1.Responses, v3.Responses)
			}
		})
	}
}

func TestNodeKinds(t *testing.T) {
	src := newFakeSource(model(1, map[string][]string{"web-1-sidecar-proxy": {"api"}}, map[string][]int{"api": {8080}, "pay": {9090}}))
	ts := startServer(t, src, Options{})
	conn := adstest.Dial(t, ts.addr)

	t.Run("proxyless gRPC client gets every service", func(t *testing.T) {
		node := sidecarNode("client-7")
		node.UserAgentName = "gRPC Go"
		c := adstest.NewSotW(t, conn, node)
		c.Subscribe(adstest.ClusterType)
		r := c.Recv(recvTimeout)
		if r == nil {
			t.Fatal("no response")
		}
		if got := len(r.GetResources()); got != 2 {
			t.Errorf("%d clusters, want 2 (api, pay)", got)
		}
	})

	t.Run("unregistered sidecar waits for its registration", func(t *testing.T) {
		const id = "db-1-sidecar-proxy"
		c := adstest.NewDelta(t, conn, sidecarNode(id))
		c.Subscribe(adstest.ClusterType)
		if r := c.Recv(quiet); r != nil {
			t.Fatalf("unregistered sidecar got %v", r)
		}
		waitUntil(t, recvTimeout, "kind unregistered in status", func() bool {
			for _, p := range ts.Status() {
				if p.NodeID == id {
					return p.Kind == KindUnregistered
				}
			}
			return false
		})
		if n := ts.logs.FilterMessageSnippet("serving nothing").FilterField(zapString("node_id", id)).Len(); n != 1 {
			t.Errorf("%d 'serving nothing' log entries for %s, want 1", n, id)
		}
		src.Set(model(2, map[string][]string{"web-1-sidecar-proxy": {"api"}, id: {"pay"}}, map[string][]int{"api": {8080}, "pay": {9090}}))
		r := c.Recv(recvTimeout)
		if r == nil {
			t.Fatal("no response after the registration appeared")
		}
		if got := r.GetResources()[0].GetName(); got != "pay" {
			t.Errorf("cluster %q, want pay", got)
		}
	})
}

func TestReadinessAndLifecycle(t *testing.T) {
	src := newFakeSource(nil)
	ts := startServer(t, src, Options{})
	if ts.Ready() {
		t.Fatal("ready before the first model snapshot")
	}
	const id = "web-1-sidecar-proxy"
	c := adstest.NewSotW(t, adstest.Dial(t, ts.addr), sidecarNode(id))
	c.Subscribe(adstest.ClusterType)
	if r := c.Recv(quiet); r != nil {
		t.Fatalf("response before any model: %v", r)
	}
	src.Set(model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {1}}))
	if r := c.Recv(recvTimeout); r == nil {
		t.Fatal("no response once the model arrived")
	}
	// Readiness is set when the rebuild that pushed this returns.
	waitUntil(t, recvTimeout, "ready after the first rebuild", ts.Ready)
	if got := value(ts.metrics.ConnectedProxies); got != 1 {
		t.Errorf("connected proxies = %v, want 1", got)
	}
	c.Close()
	waitUntil(t, recvTimeout, "the node's cache entry to be cleared", func() bool {
		return len(ts.cache.GetStatusKeys()) == 0 && value(ts.metrics.ConnectedProxies) == 0
	})
	if n := ts.logs.FilterMessage("stream closed").Len(); n != 1 {
		t.Errorf("%d 'stream closed' entries, want 1", n)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	src := newFakeSource(model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {1}}))
	srv := New(zapNop(), src, fakeTranslator{}, newMetrics(), Options{ShutdownGrace: 2 * time.Second})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	c := adstest.NewSotW(t, adstest.Dial(t, lis.Addr().String()), sidecarNode(id))
	c.Subscribe(adstest.ClusterType)
	if r := c.Recv(recvTimeout); r == nil {
		t.Fatal("no response")
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return within 5s of cancel")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v with an open stream; want it to end streams at once", d)
	}
	if _, err := net.DialTimeout("tcp", lis.Addr().String(), time.Second); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial after shutdown: %v, want connection refused", err)
	}
}

func TestBurstOfModelChangesIsOneRebuild(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	src := newFakeSource(model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {1}}))
	ts := startServer(t, src, Options{Debounce: 100 * time.Millisecond, MaxDelay: 2 * time.Second})
	m := adstest.NewMirror(t, adstest.Dial(t, ts.addr), sidecarNode(id), "sotw", adstest.EndpointType)
	ctx, cancel := context.WithTimeout(t.Context(), recvTimeout)
	defer cancel()
	if _, err := m.WaitFor(ctx, "first EDS", func(v adstest.View) bool { return v.Responses == 1 }); err != nil {
		t.Fatal(err)
	}
	rebuilds := func() uint64 {
		var d dto.Metric
		_ = ts.metrics.RebuildDuration.Write(&d)
		return d.GetHistogram().GetSampleCount()
	}
	before := rebuilds()
	// 20 changes, each well inside the debounce window of the previous.
	for i := range 20 {
		src.Set(model(uint64(i+2), map[string][]string{id: {"api"}}, map[string][]int{"api": {i + 2}}))
	}
	v, err := m.WaitFor(ctx, "the last endpoint", func(v adstest.View) bool {
		return v.Versions[adstest.EndpointType] == "e:127.0.0.1:21"
	})
	if err != nil {
		t.Fatalf("%v (version %q)", err, v.Versions[adstest.EndpointType])
	}
	// The rebuild's duration is observed after its pushes went out.
	waitUntil(t, recvTimeout, "the rebuild to be counted", func() bool { return rebuilds() > before })
	// The first change of the burst, after a quiet window, may be rebuilt
	// at once (leading edge); the rest are coalesced into one rebuild.
	if got := rebuilds() - before; got < 1 || got > 2 {
		t.Errorf("%d rebuilds for a burst of 20 changes, want 1 or 2", got)
	}
	if v.Responses < 2 || v.Responses > 3 {
		t.Errorf("%d EDS responses, want 2 or 3 (initial, perhaps the burst's first change, after the burst)", v.Responses)
	}
}

// TestManyProxylessClientsShareOneSnapshot: proxyless clients on both
// protocols, connected at once, are served the one shared snapshot and all
// follow a change (run with -race: the snapshot is shared across streams).
func TestManyProxylessClientsShareOneSnapshot(t *testing.T) {
	src := newFakeSource(model(1, nil, map[string][]int{"api": {1}, "pay": {2}}))
	ts := startServer(t, src, Options{})
	conn := adstest.Dial(t, ts.addr)
	var mirrors []*adstest.Mirror
	for i := range 20 {
		node := sidecarNode(fmt.Sprintf("grpc-client-%d", i))
		node.UserAgentName = "gRPC Go"
		mirrors = append(mirrors, adstest.NewMirror(t, conn, node, []string{"sotw", "delta"}[i%2], adstest.ClusterType, adstest.EndpointType))
	}
	ctx, cancel := context.WithTimeout(t.Context(), recvTimeout)
	defer cancel()
	for i, m := range mirrors {
		if _, err := m.WaitFor(ctx, fmt.Sprintf("client %d: both clusters", i), func(v adstest.View) bool {
			return len(v.Names(adstest.ClusterType)) == 2 && len(v.Names(adstest.EndpointType)) == 2
		}); err != nil {
			t.Fatal(err)
		}
	}
	src.Set(model(2, nil, map[string][]int{"api": {1, 3}, "pay": {2}}))
	for i, m := range mirrors {
		if _, err := m.WaitFor(ctx, fmt.Sprintf("client %d: new endpoints", i), func(v adstest.View) bool {
			return v.Versions[adstest.EndpointType] == "e:127.0.0.1:1,127.0.0.1:3,127.0.0.1:2"
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := value(ts.metrics.ConnectedProxies); got != 20 {
		t.Errorf("connected proxies = %v, want 20", got)
	}
}
