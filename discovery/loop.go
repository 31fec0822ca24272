package discovery

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// kindEntries is one config-entry watch's response.
type kindEntries struct {
	kind mesh.EntryKind
	list []RawEntry
}

// loop is the watcher's event loop: the only goroutine that reads or
// writes the state below. Watch goroutines and fetch batches talk to it
// through channels.
type loop struct {
	w   *Watcher
	ctx context.Context
	wg  *sync.WaitGroup
	log *zap.Logger

	catalogCh chan update[map[string][]string]
	checksCh  chan update[statusChecks]
	entriesCh chan update[kindEntries]
	errCh     chan watchError
	fetchedCh chan *fetchBatch
	probedCh  chan probeResult

	b  *builder
	dc string

	catalog      map[string][]string // service name → tags
	catalogIndex uint64
	catalogSeen  bool
	// sets holds the non-passing checks by status; health what each
	// service's last fetch showed of its checks.
	sets       map[string]*checkSet
	health     map[string]*fetchedHealth
	mismatches map[string]mismatch
	entries    map[mesh.EntryKind][]RawEntry
	entryIndex map[mesh.EntryKind]uint64

	// Fetching: names waiting, and at most one batch in flight.
	pending        map[string]bool
	pendingSince   time.Time
	lastFetch      time.Time // when the last batch started
	inflight       bool
	fetchFailures  int
	fetchNotBefore time.Time
	// seenIndex is the highest index a service fetch returned.
	seenIndex uint64
	// moves holds each catalog index until a fetch has shown it to be a
	// write of the service fetched (see explain) and a probe has been read
	// after it (see probe.go).
	moves map[uint64]*move
	// probing: a probe is in flight; probeNamed: the services the last
	// probe named that have not been fetched since.
	probing     bool
	lastProbe   time.Time // when the last probe started or landed
	probeNamed  map[string]bool
	dirty       bool
	dirtySince  time.Time
	lastPublish time.Time
	lastConfig  *mesh.Config
	lastErrors  map[mesh.EntryError]bool
	// failing holds the queries whose last attempt failed; Consul is
	// reachable again once none is left.
	failing            map[string]bool
	unreachableSince   time.Time
	lastUnreachableLog time.Time
}

func newLoop(w *Watcher, ctx context.Context, wg *sync.WaitGroup) *loop {
	l := &loop{
		w:          w,
		ctx:        ctx,
		wg:         wg,
		log:        w.log,
		catalogCh:  make(chan update[map[string][]string]),
		checksCh:   make(chan update[statusChecks]),
		entriesCh:  make(chan update[kindEntries]),
		errCh:      make(chan watchError),
		fetchedCh:  make(chan *fetchBatch),
		probedCh:   make(chan probeResult),
		b:          newBuilder(),
		dc:         w.opts.Datacenter,
		catalog:    map[string][]string{},
		sets:       map[string]*checkSet{},
		health:     map[string]*fetchedHealth{},
		mismatches: map[string]mismatch{},
		entries:    map[mesh.EntryKind][]RawEntry{},
		entryIndex: map[mesh.EntryKind]uint64{},
		pending:    map[string]bool{},
		moves:      map[uint64]*move{},
		probeNamed: map[string]bool{},
		lastErrors: map[mesh.EntryError]bool{},
		failing:    map[string]bool{},
	}
	for _, status := range nonPassing {
		l.sets[status] = newCheckSet(status)
	}
	return l
}

func (l *loop) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var resync <-chan time.Time
	if l.w.opts.Resync > 0 {
		t := time.NewTicker(l.w.opts.Resync)
		defer t.Stop()
		resync = t.C
	}
	for {
		select {
		case <-l.ctx.Done():
			return
		case u := <-l.catalogCh:
			l.onCatalog(u)
			l.reachable(sourceCatalog)
		case u := <-l.checksCh:
			l.onChecks(u)
			l.reachable(checksSource(u.value.status))
		case u := <-l.entriesCh:
			l.onEntries(u)
			l.reachable(entriesSource(u.value.kind))
		case e := <-l.errCh:
			l.unreachable(e.source, e.err)
		case b := <-l.fetchedCh:
			l.onFetched(b)
		case r := <-l.probedCh:
			l.onProbe(r)
		case <-resync:
			l.resyncAll("periodic resync")
		case <-timer.C:
			l.onWake(time.Now())
		}
		if at, ok := l.nextWake(); ok {
			timer.Reset(time.Until(at))
		} else {
			timer.Stop()
		}
	}
}

func (l *loop) markPending(name string) {
	if len(l.pending) == 0 {
		l.pendingSince = time.Now()
	}
	l.pending[name] = true
}

func (l *loop) markDirty(since time.Time) {
	if !l.dirty || since.Before(l.dirtySince) {
		l.dirtySince = since
	}
	l.dirty = true
}

// resyncAll refetches every service: used when the watches cannot tell
// what changed (an index reset, a reconnect, an unattributed catalog move).
func (l *loop) resyncAll(reason string) {
	l.log.Debug("refetching every service", zap.String("reason", reason), zap.Int("services", len(l.catalog)))
	for name := range l.catalog {
		l.markPending(name)
	}
	// The refetch starts after every move seen so far.
	clear(l.moves)
	clear(l.probeNamed)
}

func (l *loop) onCatalog(u update[map[string][]string]) {
	if u.reset {
		l.seenIndex = 0
	}
	prevIndex := l.catalogIndex
	l.catalogIndex = u.index
	old := l.catalog
	l.catalog = u.value
	if l.catalog == nil {
		l.catalog = map[string][]string{}
	}
	if !l.catalogSeen || u.reset {
		l.catalogSeen = true
		l.resyncAll("catalog index reset or first read")
		for name := range old {
			if _, ok := l.catalog[name]; !ok {
				l.b.removeService(name)
				l.forgetFetched(name)
				l.markDirty(time.Now())
			}
		}
		return
	}
	removed := false
	for name, tags := range l.catalog {
		if oldTags, ok := old[name]; !ok || !slices.Equal(oldTags, tags) {
			l.markPending(name)
		}
	}
	for name := range old {
		if _, ok := l.catalog[name]; !ok {
			l.b.removeService(name)
			l.forgetFetched(name)
			delete(l.pending, name)
			delete(l.probeNamed, name)
			l.markDirty(time.Now())
			removed = true
		}
	}
	if u.index > prevIndex {
		// Something in the services table moved: an instance added,
		// changed or removed, maybe without touching the name's tags. The
		// name diff or the checks watch usually names the service, and
		// its fetch then shows the write (explains); if none does, a probe
		// or a resync will. A removed name is the write itself, nothing
		// to fetch; but the response covers every write since the last
		// one and reports only the last, and one transaction can write
		// several services: whatever else it covers is for a probe.
		if _, ok := l.moves[u.index]; !ok {
			l.moves[u.index] = &move{seen: time.Now(), explained: removed}
		}
	}
}

func (l *loop) onEntries(u update[kindEntries]) {
	if u.reset {
		// Decodings are cached by ModifyIndex, which a restarted Consul
		// may reuse for different content: decode this kind afresh.
		for ref := range l.b.entries {
			if ref.Kind == u.value.kind {
				delete(l.b.entries, ref)
			}
		}
	}
	l.entries[u.value.kind] = u.value.list
	l.entryIndex[u.value.kind] = u.index
	l.markDirty(time.Now())
}

func (l *loop) onFetched(b *fetchBatch) {
	l.inflight = false
	var failed int
	var firstErr error
	for i, name := range b.names {
		if err := b.errs[i]; err != nil {
			failed++
			firstErr = err
			l.markPending(name)
			continue
		}
		l.explain(b.indexes[i], l.b.services[name], b.entries[i])
		delete(l.probeNamed, name)
		if _, ok := l.catalog[name]; !ok || len(b.entries[i]) == 0 {
			// Deregistered while we fetched: the catalog diff (or its
			// next move) removes the name.
			l.b.removeService(name)
			l.forgetFetched(name)
			continue
		}
		l.setFetched(name, b.indexes[i], b.entries[i])
		if l.dc == "" {
			if n := b.entries[i][0].Node; n != nil {
				l.dc = n.Datacenter
			}
		}
		l.b.setService(name, b.entries[i])
	}
	l.seenIndex = max(l.seenIndex, b.maxIndex)
	if failed > 0 {
		l.fetchFailures++
		l.fetchNotBefore = time.Now().Add(backoff(l.fetchFailures, l.w.opts.MinBackoff, l.w.opts.MaxBackoff, randFloat))
		l.unreachable(sourceFetch, firstErr)
		l.log.Debug("service fetch failed", zap.Int("failed", failed), zap.Int("of", len(b.names)), zap.Error(firstErr))
	} else {
		l.fetchFailures = 0
		l.reachable(sourceFetch)
	}
	if failed < len(b.names) {
		l.markDirty(b.since)
	}
	l.checkUnexplained(time.Now())
}

// explain forgets the catalog moves that one service's fetch shows to be
// its own writes. Only exact evidence counts: an instance whose
// ModifyIndex is the catalog index (it was written then), or, when an
// instance we had is gone, a per-service index equal to the catalog index
// (the removal was the service's last write). A higher index proves
// nothing: checks writes move a service's index too, so a service whose
// check flaps would otherwise "explain" every other service's moves.
func (l *loop) explain(index uint64, old *serviceParts, entries []*api.ServiceEntry) {
	if len(l.moves) == 0 {
		return
	}
	ids := make(map[checkKey]bool, len(entries))
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		l.explained(e.Service.ModifyIndex)
		if e.Node != nil {
			ids[checkKey{e.Node.Node, e.Service.ID}] = true
		}
	}
	if _, ok := l.moves[index]; old == nil || !ok {
		return
	}
	for _, inst := range old.instances {
		if !ids[checkKey{inst.Node, inst.ID}] {
			l.explained(index)
			return
		}
	}
}

// explained marks a catalog move as shown by a fetch; it is done once a
// probe read after it has landed too.
func (l *loop) explained(index uint64) {
	if m := l.moves[index]; m != nil {
		m.explained = true
		if m.probed {
			delete(l.moves, index)
		}
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
