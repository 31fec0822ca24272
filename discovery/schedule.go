package discovery

import (
	"maps"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// canPublish: the first snapshot waits for a complete initial read.
func (l *loop) canPublish() bool {
	if l.inflight || !l.dirty {
		return false
	}
	if l.lastConfig != nil {
		return true
	}
	// Every service is fetched once the catalog has been read, nothing is
	// pending and nothing in flight (failed fetches go back to pending).
	return l.catalogSeen && l.checksSeen() && len(l.entryIndex) == len(entryKinds) && len(l.pending) == 0
}

// fetchAt and publishAt coalesce on the trailing edge of a window, except
// for the first change after a quiet window (no fetch started, no
// publish, for a whole window before it): that one is fetched and
// published at once (a leading edge), and what follows it within the
// window waits for the next. A lone check change then costs no window at
// all, and a burst still gives at most one publish per window.
func (l *loop) fetchAt() time.Time {
	c := l.w.opts.Coalesce
	at := l.pendingSince.Add(c)
	if l.pendingSince.Sub(l.lastFetch) >= c {
		at = l.pendingSince
	}
	return latest(at, l.fetchNotBefore)
}

func (l *loop) publishAt() time.Time {
	c := l.w.opts.Coalesce
	at := l.dirtySince.Add(c)
	if l.dirtySince.Sub(l.lastPublish) >= c {
		at = l.dirtySince
	}
	return latest(at, l.lastPublish.Add(c))
}

func (l *loop) nextWake() (time.Time, bool) {
	var at time.Time
	ok := false
	consider := func(t time.Time) {
		if !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	if len(l.pending) > 0 && !l.inflight {
		consider(l.fetchAt())
	}
	if l.canPublish() {
		consider(l.publishAt())
	}
	if at, ok := l.unexplainedAt(); ok {
		consider(at)
	}
	return at, ok
}

func (l *loop) onWake(now time.Time) {
	l.checkUnexplained(now)
	fetchDue := len(l.pending) > 0 && !l.inflight && !now.Before(l.fetchAt())
	// When a fetch is due too, publish after it (one snapshot instead of
	// two), unless publishing has been deferred for long: under constant
	// churn fetches never stop, and snapshots must still flow.
	deferred := now.Sub(l.lastPublish) >= publishStarvation*l.w.opts.Coalesce
	if l.canPublish() && !now.Before(l.publishAt()) && (!fetchDue || deferred) {
		l.publish(now)
	}
	if fetchDue {
		l.startFetch()
	}
}

// publishStarvation, in coalescing windows, is the longest fetches may
// defer a due publish.
const publishStarvation = 10

func (l *loop) startFetch() {
	b := &fetchBatch{since: l.pendingSince, names: slices.Sorted(maps.Keys(l.pending))}
	clear(l.pending)
	l.inflight = true
	l.lastFetch = time.Now()
	client, conc, done := l.w.client, l.w.opts.FetchConcurrency, l.fetchedCh
	l.wg.Go(func() { fetchServices(l.ctx, client, conc, b, done) })
}

func (l *loop) index() uint64 {
	idx := max(l.catalogIndex, l.checksIndex(), l.seenIndex)
	for _, i := range l.entryIndex {
		idx = max(idx, i)
	}
	return idx
}

func (l *loop) publish(now time.Time) {
	start := time.Now()
	snap := l.b.build(l.dc, l.index(), l.entries, l.lastConfig)
	first := l.lastConfig == nil
	l.lastConfig = &snap.Config
	l.dirty = false
	l.lastPublish = now
	l.logEntryErrors(snap.Config.Errors)
	l.w.publish(snap)
	fields := []zap.Field{
		zap.Uint64("index", snap.Index),
		zap.Int("services", len(snap.Services)),
		zap.Int("proxies", len(snap.Proxies)),
		zap.Int("config_errors", len(snap.Config.Errors)),
		zap.Duration("build_time", time.Since(start)),
	}
	if first {
		l.log.Info("first mesh snapshot published", fields...)
	} else {
		l.log.Debug("mesh snapshot published", fields...)
	}
}

// logEntryErrors warns once about each newly broken config entry field.
func (l *loop) logEntryErrors(errs []mesh.EntryError) {
	now := make(map[mesh.EntryError]bool, len(errs))
	for _, e := range errs {
		now[e] = true
		if !l.lastErrors[e] {
			l.log.Warn("config entry rejected, keeping its last good version",
				zap.String("entry", e.Entry.String()), zap.String("field", e.Field), zap.String("error", e.Err))
		}
	}
	l.lastErrors = now
}
