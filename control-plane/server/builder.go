package server

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// Source publishes mesh model snapshots; discovery.Watcher is one.
type Source interface {
	// Current is the newest snapshot, nil before the first.
	Current() *mesh.Snapshot
	// Subscribe returns a channel signalled (capacity 1, never blocking the
	// publisher) after each new snapshot, and a func that ends the
	// subscription.
	Subscribe() (<-chan struct{}, func())
}

// Translator turns the model into go-control-plane snapshots. It must
// validate what it returns (every resource, and consistency including RDS
// names inside API listeners) and derive each type's version from content.
type Translator interface {
	// Sidecar is the configuration of the connect-proxy with that service ID.
	Sidecar(snap *mesh.Snapshot, proxyID string) (*cache.Snapshot, error)
	// Proxyless is the configuration every proxyless gRPC client shares,
	// and what of it grpc-go will not apply (xds.Resources.Warnings).
	Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error)
}

// versions are a snapshot's per-type versions; equal versions mean equal
// content, so the snapshot is not set (and not pushed) again.
type versions [types.UnknownType]string

func versionsOf(s *cache.Snapshot) versions {
	var v versions
	for i := range s.Resources {
		v[i] = s.Resources[i].Version
	}
	return v
}

// built is the builder's record of one connected node.
type built struct {
	id       string
	node     *core.Node
	kind     Kind
	versions versions
	set      bool // a snapshot has been set for the node
	// model is the snapshot the node was last built from, nil when that
	// build failed (the next rebuild retries it); deps are the services
	// its translation read there (sidecars only).
	model *mesh.Snapshot
	deps  serviceDeps
	// failure is why the last translation failed, nil after a success.
	failure *TranslationError
	// cur is the snapshot set in the cache for the node: the target
	// (versions) or a step towards it; stage is the change in progress,
	// nil when cur is the target (stage.go).
	cur   *cache.Snapshot
	stage *staged
}

// builder keeps one snapshot per connected node in the cache. nodes and
// proxyless are owned by run's goroutine (see doc.go); ready is read by
// anyone.
type builder struct {
	log      *zap.Logger
	cache    cache.SnapshotCache
	streams  *streams
	source   Source
	tr       Translator
	metrics  *metrics.Metrics
	debounce time.Duration
	maxDelay time.Duration
	workers  int

	ready atomic.Bool

	nodes map[string]*built
	// staging are the nodes with a make-before-break change in progress.
	staging map[string]*built
	// proxyless is the last proxyless translation and the model it was
	// made from: every proxyless client shares it, and clients connecting
	// one by one do not re-translate an unchanged model.
	proxyless struct {
		model *mesh.Snapshot
		snap  *cache.Snapshot
		err   error
		// loggedErr and loggedWarnings are what was last logged, so that a
		// problem is logged once, not once per model.
		loggedErr      string
		loggedWarnings []ProxylessWarning
	}
	// warnings are the last proxyless translation's, for /status.
	warnings atomic.Pointer[[]ProxylessWarning]
}

// run is the builder's event loop; it returns when ctx is done.
func (b *builder) run(ctx context.Context) {
	changed, cancel := b.source.Subscribe()
	defer cancel()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var pendingSince time.Time // zero: no rebuild pending
	// lastChange and lastRebuild tell a lone change (rebuilt at once) from
	// one inside a burst (coalesced).
	var lastChange, lastRebuild time.Time
	// stepTimer fires at the earliest deadline of a staged change.
	stepTimer := time.NewTimer(time.Hour)
	stepTimer.Stop()
	defer stepTimer.Stop()

	b.rebuild(ctx)
	for {
		b.armSteps(stepTimer)
		select {
		case <-ctx.Done():
			return
		case <-b.streams.answered:
			b.advance(ctx)
		case <-stepTimer.C:
			b.advance(ctx)
		case <-changed:
			now := time.Now()
			quiet := now.Sub(lastChange) >= b.debounce && now.Sub(lastRebuild) >= b.debounce
			lastChange = now
			if pendingSince.IsZero() && quiet {
				// Leading edge: a change after debounce of quiet (no
				// change, no rebuild) is rebuilt at once, so a lone change
				// does not wait for the window. What follows it within
				// the window is coalesced below, so a burst costs at most
				// two rebuilds (discovery coalesces bursts before us too).
				b.rebuild(ctx)
				lastRebuild = time.Now()
				continue
			}
			// Coalesce a burst: wait for debounce of quiet, but never more
			// than maxDelay after the first change of the burst.
			if pendingSince.IsZero() {
				pendingSince = now
			}
			wait := min(b.debounce, b.maxDelay-now.Sub(pendingSince))
			timer.Reset(max(wait, 0))
		case <-timer.C:
			pendingSince = time.Time{}
			b.rebuild(ctx)
			lastRebuild = time.Now()
		case <-b.streams.kick:
			b.nodesChanged(ctx)
		}
	}
}

// nodesChanged builds newly connected nodes at once from the current model
// (no debounce: a proxy waits for nothing but its own translation) and
// forgets nodes whose last stream closed.
func (b *builder) nodesChanged(ctx context.Context) {
	model := b.source.Current()
	var fresh []*built
	for _, id := range b.streams.takeChanged() {
		node, ok := b.streams.node(id)
		if ok {
			e, have := b.nodes[id]
			if !have {
				e = &built{id: id, node: node}
				b.nodes[id] = e
			} else {
				// It went away and came back before we looked: its cache
				// entry is intact, but its stream state (and perhaps its
				// user agent) is new.
				e.node = node
				b.streams.setKind(id, e.kind)
				b.streams.setFailure(id, e.failure)
			}
			fresh = append(fresh, e)
			continue
		}
		// whileGone also drops what the registry kept of the node for a
		// reconnect, so call it even for a node never built.
		if b.streams.whileGone(id, func() { b.cache.ClearSnapshot(id) }) {
			if e, have := b.nodes[id]; have {
				if e.failure != nil {
					b.metrics.FailingProxies.Dec()
				}
				delete(b.nodes, id)
				delete(b.staging, id)
			}
		}
	}
	if model == nil || len(fresh) == 0 {
		return
	}
	b.buildAll(ctx, model, fresh)
}

// rebuild brings every connected node to the current model. Only nodes
// whose inputs changed are translated again: a sidecar whose own
// registration, reachable services and their config entries are the same
// objects as in the model it was built from keeps its snapshot (see
// deps.go); proxyless clients and nodes whose last build failed are always
// rebuilt.
func (b *builder) rebuild(ctx context.Context) {
	model := b.source.Current()
	if model == nil {
		return
	}
	start := time.Now()
	b.metrics.ConfigEntryErrors.Set(float64(len(model.Config.Errors)))
	diffs := map[*mesh.Snapshot]*modelDiff{}
	affected := make([]*built, 0, len(b.nodes))
	for _, e := range b.nodes {
		if e.model == model {
			continue
		}
		if e.model != nil && e.kind == KindSidecar {
			d := diffs[e.model]
			if d == nil {
				d = diffModels(e.model, model)
				diffs[e.model] = d
			}
			if !d.affects(e.id, e.deps) {
				e.model = model
				continue
			}
		}
		affected = append(affected, e)
	}
	set := b.buildAll(ctx, model, affected)
	d := time.Since(start)
	b.metrics.RebuildDuration.Observe(d.Seconds())
	if !b.ready.Swap(true) {
		b.log.Info("first mesh snapshot built; ready", zap.Uint64("consul_index", model.Index))
	}
	b.log.Debug("rebuilt", zap.Uint64("consul_index", model.Index), zap.Int("nodes", len(b.nodes)),
		zap.Int("translated", len(affected)), zap.Int("changed", set), zap.Duration("took", d))
}

// buildAll builds the given nodes on up to b.workers goroutines (the
// translation is pure and CPU-bound) and returns how many snapshots changed.
// The proxyless configuration is translated once and shared.
func (b *builder) buildAll(ctx context.Context, model *mesh.Snapshot, nodes []*built) int {
	proxyless := b.proxylessFor(model)
	var next atomic.Int64
	var changed atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(nodes) || ctx.Err() != nil {
				return
			}
			if b.build(ctx, model, nodes[i], proxyless) {
				changed.Add(1)
			}
		}
	}
	workers := min(b.workers, len(nodes))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	b.collectStaging(nodes)
	return int(changed.Load())
}

// proxylessFor returns the proxyless translation of model, made at most
// once per model and only if some node asks for it. The returned func may
// be called from the rebuild's workers; b.proxyless is written inside the
// Once and read only by the loop goroutine after the workers are done.
func (b *builder) proxylessFor(model *mesh.Snapshot) func() (*cache.Snapshot, error) {
	if b.proxyless.model == model {
		snap, err := b.proxyless.snap, b.proxyless.err
		return func() (*cache.Snapshot, error) { return snap, err }
	}
	return sync.OnceValues(func() (*cache.Snapshot, error) {
		s, ws, err := b.tr.Proxyless(model)
		if err == nil {
			// Before it is shared: see withVersionMap.
			err = withVersionMap(s)
		}
		b.proxyless.model, b.proxyless.snap, b.proxyless.err = model, s, err
		if err != nil {
			b.metrics.TranslateErrors.Inc()
			if msg := err.Error(); msg != b.proxyless.loggedErr {
				b.proxyless.loggedErr = msg
				te := newTranslationError(err, model.Index, time.Now())
				b.log.Error("proxyless translation failed; proxyless clients keep their last configuration", te.fields()...)
			}
			return s, err
		}
		if b.proxyless.loggedErr != "" {
			b.proxyless.loggedErr = ""
			b.log.Info("proxyless translation succeeds again", zap.Uint64("consul_index", model.Index))
		}
		b.noteWarnings(proxylessWarnings(ws), model.Index)
		return s, err
	})
}

// build translates one node's configuration and sets it if its versions
// changed. It reports whether it set a snapshot.
func (b *builder) build(ctx context.Context, model *mesh.Snapshot, e *built, proxyless func() (*cache.Snapshot, error)) bool {
	start := time.Now()
	kind := classify(model, e.node)
	if kind != e.kind {
		b.streams.setKind(e.id, kind)
		if kind == KindUnregistered {
			b.log.Warn("node is not a sidecar registered in Consul nor a gRPC client; serving nothing until its proxy registration appears",
				zap.String("node_id", e.id), zap.String("user_agent", e.node.GetUserAgentName()),
				zap.Bool("had_config", e.set))
		} else {
			b.log.Info("node classified", zap.String("node_id", e.id), zap.String("kind", string(kind)))
		}
		e.kind = kind
	}
	var snap *cache.Snapshot
	var err error
	e.model, e.deps = nil, nil
	switch kind {
	case KindSidecar:
		snap, err = b.tr.Sidecar(model, e.id)
		if err == nil {
			err = withVersionMap(snap)
		}
		if err != nil {
			b.metrics.TranslateErrors.Inc()
			if b.fail(e, err, model.Index) {
				b.log.Error("sidecar translation failed; the proxy keeps its last configuration",
					append(e.failure.fields(), zap.String("node_id", e.id))...)
			}
			return false
		}
	case KindProxyless:
		if snap, err = proxyless(); err != nil {
			b.fail(e, err, model.Index) // logged once for all proxyless clients
			return false
		}
	default:
		// Unregistered: nothing to serve. A proxy deregistered while
		// connected keeps what it has (static stability).
		b.recovered(e)
		return false
	}
	if b.recovered(e) && kind == KindSidecar {
		b.log.Info("sidecar translation succeeds again", zap.String("node_id", e.id), zap.Uint64("consul_index", model.Index))
	}
	v := versionsOf(snap)
	if e.set && v == e.versions {
		b.metrics.SnapshotsUnchanged.Inc()
		e.markBuilt(model)
		return false
	}
	if err := b.setSteps(ctx, e, snap); err != nil {
		b.log.Error("set snapshot", zap.String("node_id", e.id), zap.Error(err))
		return false
	}
	e.versions, e.set = v, true
	e.markBuilt(model)
	b.metrics.SnapshotsSet.Inc()
	b.metrics.PushDuration.Observe(time.Since(start).Seconds())
	return true
}

// fail records that e's translation failed with err, for /status, and
// reports whether the error is new for e (to be logged).
func (b *builder) fail(e *built, err error, index uint64) bool {
	te := newTranslationError(err, index, time.Now())
	if te.same(e.failure) {
		e.failure.ConsulIndex = index
		b.streams.setFailure(e.id, e.failure)
		return false
	}
	if e.failure == nil {
		b.metrics.FailingProxies.Inc()
	}
	e.failure = te
	b.streams.setFailure(e.id, te)
	return true
}

// recovered clears e's failure and reports whether it had one.
func (b *builder) recovered(e *built) bool {
	if e.failure == nil {
		return false
	}
	e.failure = nil
	b.metrics.FailingProxies.Dec()
	b.streams.setFailure(e.id, nil)
	return true
}

// noteWarnings publishes the proxyless warnings for /status and logs the
// set when it differs from the last one logged. Called inside the
// proxyless Once only.
func (b *builder) noteWarnings(ws []ProxylessWarning, index uint64) {
	b.warnings.Store(&ws)
	if slices.Equal(ws, b.proxyless.loggedWarnings) {
		return
	}
	b.proxyless.loggedWarnings = ws
	if len(ws) == 0 {
		b.log.Info("proxyless configuration: grpc-go applies all of it", zap.Uint64("consul_index", index))
		return
	}
	lines := make([]string, 0, len(ws))
	for _, w := range ws {
		lines = append(lines, w.String())
	}
	b.log.Warn("proxyless configuration: grpc-go will not apply some of it", zap.Strings("warnings", lines),
		zap.Uint64("consul_index", index))
}

// setSteps sets the first step towards target for e (target itself unless
// the change adds or removes clusters, see stage.go) and records the rest.
// Called from a rebuild's worker that owns e; the loop registers the
// stage in b.staging after the workers are done (collectStaging).
func (b *builder) setSteps(ctx context.Context, e *built, target *cache.Snapshot) error {
	steps := planSteps(e.cur, target)
	if err := b.cache.SetSnapshot(ctx, e.id, steps[0]); err != nil {
		return err
	}
	prev := e.cur
	e.cur, e.stage = steps[0], nil
	if len(steps) > 1 {
		e.stage = &staged{next: steps[1:], wait: waitFor(prev, steps[0]), deadline: time.Now().Add(stepTimeout)}
	}
	return nil
}

// collectStaging registers the staged changes the last build started and
// forgets those it replaced with a direct set.
func (b *builder) collectStaging(nodes []*built) {
	if b.staging == nil {
		b.staging = map[string]*built{}
	}
	for _, e := range nodes {
		if e.stage != nil {
			b.staging[e.id] = e
		} else {
			delete(b.staging, e.id)
		}
	}
}

// advance sets the next step of every staged change whose node has answered
// the step before, or whose deadline passed.
func (b *builder) advance(ctx context.Context) {
	now := time.Now()
	for id, e := range b.staging {
		st := e.stage
		answered := b.streams.answeredAll(id, st.wait)
		if !answered && !now.After(st.deadline) {
			continue
		}
		outcome := "answered"
		if !answered {
			outcome = "timeout"
			b.log.Debug("make-before-break: step not answered in time; going on", zap.String("node_id", id),
				zap.Any("waiting_for", st.wait))
		}
		next := st.next[0]
		if err := b.cache.SetSnapshot(ctx, id, next); err != nil {
			b.log.Error("set snapshot", zap.String("node_id", id), zap.Error(err))
			delete(b.staging, id)
			e.stage = nil
			continue
		}
		b.metrics.StagedSteps.WithLabelValues(outcome).Inc()
		st.wait = waitFor(e.cur, next)
		e.cur = next
		st.next = st.next[1:]
		st.deadline = now.Add(stepTimeout)
		if len(st.next) == 0 {
			e.stage = nil
			delete(b.staging, id)
		}
	}
}

// armSteps sets t to the earliest deadline of a staged change.
func (b *builder) armSteps(t *time.Timer) {
	var first time.Time
	for _, e := range b.staging {
		if first.IsZero() || e.stage.deadline.Before(first) {
			first = e.stage.deadline
		}
	}
	if first.IsZero() {
		t.Stop()
		return
	}
	t.Reset(max(time.Until(first), 0))
}

// markBuilt records that e's snapshot is up to date with model.
func (e *built) markBuilt(model *mesh.Snapshot) {
	e.model = model
	if e.kind == KindSidecar {
		e.deps = sidecarDeps(model, e.id)
	}
}

func defaultWorkers() int { return max(1, runtime.GOMAXPROCS(0)) }
