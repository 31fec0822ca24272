package discovery

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// A catalog move (the /v1/catalog/services index) says that the services
// table was written, not which service. The name diff names new, removed
// and retagged names, the non-passing checks name instances that come or
// go unhealthy, and the fetch of a named service shows the write (see
// explain). What neither names is an instance added, changed or removed
// under an existing name with passing checks or none, and such a write
// can hide behind another: a response covers every write since the last
// one and reports only the last index, and one transaction can register
// several services. Consul's HTTP API has no query for "what was written
// since index N", so every move is followed by a probe: one non-blocking
// read of every check (/v1/health/state/any), whose service-level check
// IDs are compared with what each service's last fetch showed; the
// services that differ are fetched (an instance with checks comes and
// goes with its checks). Services with a check-less instance (or none)
// are fetched on every probe as well: the probe cannot see their
// instances, and their write may hide behind another one. A move that no
// fetch has explained once the probe's fetches have landed is an instance
// changed in place: every service is refetched.
//
// A probe starts three coalescing windows after the oldest move it covers
// (one probe covers every move before it) and at least that long after
// the previous one, so a burst of registrations costs a probe every few
// windows. It is one large read, on the path of registrations only; a
// check change never causes one.

// unexplainedGrace, in coalescing windows, spaces the steps for catalog
// moves.
const unexplainedGrace = 3

// reasonUnexplained is logged with the refetch of every service that an
// unexplained catalog move causes (tests match it).
const reasonUnexplained = "catalog changed without a visible diff"

// move is one catalog index not yet accounted for.
type move struct {
	seen time.Time
	// explained: a fetch showed the write at this index (see explain).
	explained bool
	// probing: a probe started after this move is in flight; probed: one
	// has landed (seen is then when it landed).
	probing, probed bool
}

// probeCheck is what a probe decodes of each check.
type probeCheck struct {
	Node, CheckID, ServiceID, ServiceName string
}

type probeResult struct {
	checks []probeCheck
	err    error
}

func (l *loop) startProbe(now time.Time) {
	l.probing = true
	l.lastProbe = now
	for _, m := range l.moves {
		// A move already probed waits for its fetches or a refetch.
		m.probing = !m.probed
	}
	l.log.Debug("probing every check for catalog moves", zap.Int("moves", len(l.moves)))
	ctx, client, done := l.ctx, l.w.client, l.probedCh
	l.wg.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, requestMargin)
		var checks []probeCheck
		_, err := client.Raw().Query("/v1/health/state/"+api.HealthAny, &checks, (&api.QueryOptions{}).WithContext(qctx))
		cancel()
		select {
		case done <- probeResult{checks: checks, err: err}:
		case <-ctx.Done():
		}
	})
}

// onProbe names the services whose service-level checks differ from their
// last fetch.
func (l *loop) onProbe(r probeResult) {
	l.probing = false
	now := time.Now()
	l.lastProbe = now
	if r.err != nil {
		l.log.Debug("probe of every check failed", zap.Error(r.err))
		l.resyncAll(reasonUnexplained)
		return
	}
	got := map[string][]checkKey{}
	for _, c := range r.checks {
		if c.ServiceID == "" {
			continue
		}
		got[c.ServiceName] = append(got[c.ServiceName], checkKey{c.Node, c.CheckID})
	}
	for name := range l.catalog {
		keys := got[name]
		slices.SortFunc(keys, compareKeys)
		var have []checkKey
		if h := l.health[name]; h != nil {
			have = h.serviceChecks
		}
		// A check-less instance is invisible to the probe, and its write
		// can hide behind another in one catalog response (see the top of
		// this file), so services that have one are fetched again on every
		// probe: few in a mesh, where instances and sidecars have checks.
		if !slices.Equal(keys, have) || l.health[name] == nil || l.health[name].checkLess {
			l.markPending(name)
			l.probeNamed[name] = true
		}
	}
	unexplained := 0
	for idx, m := range l.moves {
		if !m.probing {
			continue
		}
		m.probing, m.probed, m.seen = false, true, now
		if m.explained {
			delete(l.moves, idx)
		} else {
			unexplained++
		}
	}
	l.log.Debug("probe done", zap.Int("named", len(l.probeNamed)), zap.Int("unexplained", unexplained))
	if unexplained > 0 && len(l.probeNamed) == 0 {
		// Nothing with checks changed: check-less instances.
		l.resyncAll(reasonUnexplained)
	}
}

// unexplainedAt is when the next step for the catalog moves is due, false
// when none is (none left, or waiting on what is in flight).
func (l *loop) unexplainedAt() (time.Time, bool) {
	probe, resync, ok := l.movesDue()
	switch {
	case !ok:
		return time.Time{}, false
	case probe.IsZero():
		return resync, true
	case resync.IsZero() || probe.Before(resync):
		return probe, true
	default:
		return resync, true
	}
}

// movesDue returns when a probe is due (zero: none) and when a refetch of
// every service is (zero: none). A probe waits for none in flight; a
// refetch waits for no fetch or probe in flight and for the services the
// last probe named to be fetched (they may explain the moves).
func (l *loop) movesDue() (probe, resync time.Time, ok bool) {
	if len(l.moves) == 0 || l.probing {
		return time.Time{}, time.Time{}, false
	}
	grace := unexplainedGrace * l.w.opts.Coalesce
	for _, m := range l.moves {
		due := m.seen.Add(grace)
		switch {
		case !m.probed:
			if probe.IsZero() || due.Before(probe) {
				probe = due
			}
		case !m.explained && !l.inflight && len(l.probeNamed) == 0:
			if resync.IsZero() || due.Before(resync) {
				resync = due
			}
		}
	}
	if !probe.IsZero() {
		probe = latest(probe, l.lastProbe.Add(grace))
	}
	return probe, resync, !probe.IsZero() || !resync.IsZero()
}

// checkUnexplained takes the next step for the catalog moves that are due:
// a probe, else a refetch of every service.
func (l *loop) checkUnexplained(now time.Time) {
	probe, resync, ok := l.movesDue()
	switch {
	case !ok:
	case !probe.IsZero() && !now.Before(probe):
		l.startProbe(now)
	case !resync.IsZero() && !now.Before(resync):
		l.resyncAll(reasonUnexplained)
	}
}
