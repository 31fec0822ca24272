package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// TestReconnectBeforeBuilderLooks: a node whose stream closes and reopens
// before the builder handles the change keeps its snapshot and gets its
// kind back in the status.
func TestReconnectBeforeBuilderLooks(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	src := newFakeSource(model(1, map[string][]string{id: {"api"}}, map[string][]int{"api": {1}}))
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	b := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: fakeTranslator{}, metrics: m, workers: 1, nodes: map[string]*built{}}
	ctx := context.Background()
	connect := func(streamID int64) {
		t.Helper()
		_ = st.OnStreamOpen(ctx, streamID, "")
		if err := st.OnStreamRequest(streamID, &discovery.DiscoveryRequest{Node: sidecarNode(id), TypeUrl: "t"}); err != nil {
			t.Fatal(err)
		}
	}

	connect(1)
	b.nodesChanged(ctx)
	if _, err := b.cache.GetSnapshot(id); err != nil {
		t.Fatalf("no snapshot after connect: %v", err)
	}
	st.OnStreamClosed(1, nil)
	connect(2)
	b.nodesChanged(ctx)
	if _, err := b.cache.GetSnapshot(id); err != nil {
		t.Fatalf("snapshot cleared although the node is connected: %v", err)
	}
	if got := st.Status(); len(got) != 1 || got[0].Kind != KindSidecar || got[0].StreamID != 2 {
		t.Errorf("status = %+v, want stream 2 of a sidecar", got)
	}

	st.OnStreamClosed(2, nil)
	b.nodesChanged(ctx)
	if _, err := b.cache.GetSnapshot(id); err == nil {
		t.Error("snapshot kept after the node left")
	}
	if len(b.nodes) != 0 {
		t.Errorf("builder still tracks %d nodes", len(b.nodes))
	}
}

type countingTranslator struct {
	fakeTranslator
	proxyless atomic.Int32
}

func (c *countingTranslator) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	c.proxyless.Add(1)
	return c.fakeTranslator.Proxyless(snap)
}

// TestProxylessTranslatedOncePerModel: proxyless clients connecting one by
// one share one translation of an unchanged model.
func TestProxylessTranslatedOncePerModel(t *testing.T) {
	src := newFakeSource(model(1, nil, map[string][]int{"api": {1}}))
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	tr := &countingTranslator{}
	b := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: tr, metrics: m, workers: 2, nodes: map[string]*built{}}
	ctx := context.Background()
	for i := range 3 {
		id := int64(i + 1)
		_ = st.OnStreamOpen(ctx, id, "")
		node := sidecarNode(fmt.Sprintf("client-%d", i))
		node.UserAgentName = "gRPC Go"
		if err := st.OnStreamRequest(id, &discovery.DiscoveryRequest{Node: node, TypeUrl: "t"}); err != nil {
			t.Fatal(err)
		}
		b.nodesChanged(ctx)
	}
	if got := tr.proxyless.Load(); got != 1 {
		t.Errorf("%d proxyless translations for 3 clients and one model, want 1", got)
	}
	src.Set(model(2, nil, map[string][]int{"api": {2}}))
	b.rebuild(ctx)
	if got := tr.proxyless.Load(); got != 2 {
		t.Errorf("%d proxyless translations after a new model, want 2", got)
	}
	for i := range 3 {
		if _, err := b.cache.GetSnapshot(fmt.Sprintf("client-%d", i)); err != nil {
			t.Errorf("client-%d: %v", i, err)
		}
	}
}

// TestSnapshotsOnlyForConnectedNodes: a model with many proxies builds
// snapshots for the connected one only, also on a full rebuild.
func TestSnapshotsOnlyForConnectedNodes(t *testing.T) {
	src := newFakeSource(model(1, map[string][]string{"a-sidecar-proxy": {"api"}, "b-sidecar-proxy": {"api"}, "c-sidecar-proxy": {"api"}},
		map[string][]int{"api": {1}}))
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	b := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: fakeTranslator{}, metrics: m, workers: 2, nodes: map[string]*built{}}
	ctx := context.Background()
	_ = st.OnDeltaStreamOpen(ctx, 1, "")
	if err := st.OnStreamDeltaRequest(1, &discovery.DeltaDiscoveryRequest{Node: sidecarNode("b-sidecar-proxy"), TypeUrl: "t"}); err != nil {
		t.Fatal(err)
	}
	b.nodesChanged(ctx)
	b.rebuild(ctx)
	for _, tc := range []struct {
		id   string
		want bool
	}{{"a-sidecar-proxy", false}, {"b-sidecar-proxy", true}, {"c-sidecar-proxy", false}} {
		_, err := b.cache.GetSnapshot(tc.id)
		if got := err == nil; got != tc.want {
			t.Errorf("%s has a snapshot: %v, want %v", tc.id, got, tc.want)
		}
	}
}
