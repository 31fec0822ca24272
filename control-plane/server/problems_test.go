package server

import (
	"context"
	"errors"
	"fmt"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// problemTranslator is fakeTranslator, except that the models in fail
// fail to translate with their error and proxyless translations carry the
// warnings of their model.
type problemTranslator struct {
	fakeTranslator
	fail     map[*mesh.Snapshot]error
	warnings map[*mesh.Snapshot][]xds.Warning
}

func (p problemTranslator) Sidecar(snap *mesh.Snapshot, id string) (*cache.Snapshot, error) {
	if err := p.fail[snap]; err != nil {
		return nil, err
	}
	return p.fakeTranslator.Sidecar(snap, id)
}

func (p problemTranslator) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	if err := p.fail[snap]; err != nil {
		return nil, nil, err
	}
	s, _, err := p.fakeTranslator.Proxyless(snap)
	return s, p.warnings[snap], err
}

// problemBuilder is a builder on src and tr, with one connected node.
func problemBuilder(t *testing.T, src *fakeSource, tr Translator, node string, userAgent string) (*builder, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	m := newMetrics()
	st := newStreams(zap.NewNop(), m)
	b := &builder{log: zap.New(core), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil), streams: st,
		source: src, tr: tr, metrics: m, workers: 1, nodes: map[string]*built{}}
	_ = st.OnStreamOpen(t.Context(), 1, "")
	req := &discovery.DiscoveryRequest{Node: sidecarNode(node), TypeUrl: "t"}
	req.Node.UserAgentName = userAgent
	if err := st.OnStreamRequest(1, req); err != nil {
		t.Fatal(err)
	}
	b.nodesChanged(t.Context())
	return b, logs
}

func edsVersion(t *testing.T, b *builder, node string) string {
	t.Helper()
	s, err := b.cache.GetSnapshot(node)
	if err != nil {
		t.Fatalf("no snapshot for %s: %v", node, err)
	}
	url, err := cache.GetResponseTypeURL(types.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return s.GetVersion(url)
}

// TestTranslationErrorKeepsLastConfig: a sidecar whose translation fails
// on an entry we cannot apply keeps its last snapshot; /status names the
// entry and field; the error is logged once however many models repeat it;
// a later successful translation clears it and pushes.
func TestTranslationErrorKeepsLastConfig(t *testing.T) {
	const id = "web-1-sidecar-proxy"
	ups := map[string][]string{id: {"api"}}
	good := model(1, ups, map[string][]int{"api": {1}})
	entryErr := fmt.Errorf("routes for %s: %w", id, &xds.EntryError{
		Entry: mesh.EntryRef{Kind: mesh.KindServiceSplitter, Name: "api"}, Field: "Splits[1].ServiceSubset",
		Err: errors.New(`subset "v3" is not defined by service-resolver/api`)})
	bad1 := model(2, ups, map[string][]int{"api": {1, 2}})
	bad2 := model(3, ups, map[string][]int{"api": {1, 2, 3}})
	fixed := model(4, ups, map[string][]int{"api": {1, 2, 3}})
	other := model(5, ups, map[string][]int{"api": {4}})
	src := newFakeSource(good)
	tr := problemTranslator{fail: map[*mesh.Snapshot]error{bad1: entryErr, bad2: entryErr, other: errors.New("clusters: boom")}}
	b, logs := problemBuilder(t, src, tr, id, "consulate-test")
	ctx := t.Context()

	goodVersion := edsVersion(t, b, id)
	wantErr := &TranslationError{Kind: mesh.KindServiceSplitter, Name: "api", Field: "Splits[1].ServiceSubset",
		Error: entryErr.Error()}
	ignoreTime := cmpopts.IgnoreFields(TranslationError{}, "Since")
	status := func() *TranslationError {
		t.Helper()
		st := b.streams.Status()
		if len(st) != 1 {
			t.Fatalf("status has %d proxies, want 1", len(st))
		}
		return st[0].TranslationError
	}
	failedLogs := func() int {
		return logs.FilterMessage("sidecar translation failed; the proxy keeps its last configuration").Len()
	}

	steps := []struct {
		name        string
		model       *mesh.Snapshot
		wantErr     *TranslationError
		wantLogs    int
		wantFailing float64
		wantPushed  bool // a new endpoint version was set
	}{
		{"broken entry: kept, named", bad1, withIndex(wantErr, 2), 1, 1, false},
		{"same error on a newer model: logged once", bad2, withIndex(wantErr, 3), 1, 1, false},
		{"fixed: cleared and pushed", fixed, nil, 1, 0, true},
		{"another, non-entry error", other, &TranslationError{Error: "clusters: boom", ConsulIndex: 5}, 2, 1, false},
	}
	last := goodVersion
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			src.Set(s.model)
			b.rebuild(ctx)
			if diff := cmp.Diff(s.wantErr, status(), ignoreTime); diff != "" {
				t.Errorf("translation_error (-want +got):\n%s", diff)
			}
			if got := failedLogs(); got != s.wantLogs {
				t.Errorf("%d failure logs, want %d", got, s.wantLogs)
			}
			if got := value(b.metrics.FailingProxies); got != s.wantFailing {
				t.Errorf("failing proxies gauge = %v, want %v", got, s.wantFailing)
			}
			v := edsVersion(t, b, id)
			if pushed := v != last; pushed != s.wantPushed {
				t.Errorf("endpoint version %q after %q: pushed = %v, want %v", v, last, pushed, s.wantPushed)
			}
			last = v
		})
	}
	t.Run("failure log names entry and field", func(t *testing.T) {
		e := logs.FilterMessage("sidecar translation failed; the proxy keeps its last configuration").All()[0].ContextMap()
		want := map[string]any{"entry": "service-splitter/api", "entry_kind": "service-splitter", "entry_name": "api",
			"field": "Splits[1].ServiceSubset", "node_id": id, "consul_index": uint64(2), "error": entryErr.Error()}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("log fields (-want +got):\n%s", diff)
		}
	})
	t.Run("recovery logged", func(t *testing.T) {
		if n := logs.FilterMessage("sidecar translation succeeds again").Len(); n != 1 {
			t.Errorf("%d recovery logs, want 1", n)
		}
	})
	t.Run("disconnect drops the gauge", func(t *testing.T) {
		b.streams.OnStreamClosed(1, nil)
		b.nodesChanged(ctx)
		if got := value(b.metrics.FailingProxies); got != 0 {
			t.Errorf("failing proxies gauge = %v after the node left, want 0", got)
		}
	})
}

func withIndex(te *TranslationError, index uint64) *TranslationError {
	c := *te
	c.ConsulIndex = index
	return &c
}

// TestProxylessWarningsLoggedOnce: the warnings of a proxyless translation
// are in /status and logged once per distinct set, not once per model.
func TestProxylessWarningsLoggedOnce(t *testing.T) {
	svcs := map[string][]int{"api": {1}}
	m1, m2, m3, m4 := model(1, nil, svcs), model(2, nil, svcs), model(3, nil, svcs), model(4, nil, svcs)
	timeout := xds.Warning{Resource: "routes api", Entry: mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: "api"},
		Message: "route timeout is ignored by grpc-go"}
	maglev := xds.Warning{Resource: "clusters api.default.dc1.internal", Message: "MAGLEV becomes RING_HASH"}
	tr := problemTranslator{warnings: map[*mesh.Snapshot][]xds.Warning{
		m1: {timeout}, m2: {timeout}, m3: {maglev, timeout},
	}}
	src := newFakeSource(m1)
	b, logs := problemBuilder(t, src, tr, "grpc-client-1", "gRPC Go")
	srv := &Server{builder: b}
	wantTimeout := ProxylessWarning{Resource: "routes api", Entry: "service-router/api", Message: "route timeout is ignored by grpc-go"}
	wantMaglev := ProxylessWarning{Resource: "clusters api.default.dc1.internal", Message: "MAGLEV becomes RING_HASH"}
	steps := []struct {
		name     string
		model    *mesh.Snapshot
		want     []ProxylessWarning
		wantLogs int
	}{
		{"first set", m1, []ProxylessWarning{wantTimeout}, 1},
		{"same set on a new model", m2, []ProxylessWarning{wantTimeout}, 1},
		{"set grows", m3, []ProxylessWarning{wantMaglev, wantTimeout}, 2},
		{"no warnings", m4, []ProxylessWarning{}, 2},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			src.Set(s.model)
			b.rebuild(t.Context())
			if diff := cmp.Diff(s.want, srv.ProxylessWarnings()); diff != "" {
				t.Errorf("ProxylessWarnings (-want +got):\n%s", diff)
			}
			if n := logs.FilterMessage("proxyless configuration: grpc-go will not apply some of it").Len(); n != s.wantLogs {
				t.Errorf("%d warning logs, want %d", n, s.wantLogs)
			}
		})
	}
}

// TestConfigEntryErrorsStatus: the model's undecodable entries are listed
// with kind, name, field and error, and counted by the gauge.
func TestConfigEntryErrorsStatus(t *testing.T) {
	snap := model(1, nil, nil)
	snap.Config.Errors = []mesh.EntryError{
		{Entry: mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: "api"}, Field: "Subsets[v2].Filter", Err: "Checks is not supported"},
		{Entry: mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: "web"}, Field: "Meta[consulate_nope]", Err: "unknown key"},
	}
	src := newFakeSource(snap)
	m := newMetrics()
	b := &builder{log: zap.NewNop(), cache: cache.NewSnapshotCache(false, cache.IDHash{}, nil),
		streams: newStreams(zap.NewNop(), m), source: src, tr: fakeTranslator{}, metrics: m, workers: 1, nodes: map[string]*built{}}
	srv := &Server{builder: b}
	b.rebuild(context.Background())
	want := []ConfigEntryError{
		{Kind: mesh.KindServiceResolver, Name: "api", Field: "Subsets[v2].Filter", Error: "Checks is not supported"},
		{Kind: mesh.KindServiceRouter, Name: "web", Field: "Meta[consulate_nope]", Error: "unknown key"},
	}
	if diff := cmp.Diff(want, srv.ConfigEntryErrors()); diff != "" {
		t.Errorf("ConfigEntryErrors (-want +got):\n%s", diff)
	}
	if got := value(m.ConfigEntryErrors); got != 2 {
		t.Errorf("gauge = %v, want 2", got)
	}
	src.Set(model(2, nil, nil))
	b.rebuild(context.Background())
	if got := srv.ConfigEntryErrors(); len(got) != 0 {
		t.Errorf("ConfigEntryErrors after the fix = %v, want none", got)
	}
	if got := value(m.ConfigEntryErrors); got != 0 {
		t.Errorf("gauge after the fix = %v, want 0", got)
	}
}
