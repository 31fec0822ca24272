package discovery

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// A catalog move (the /v1/catalog/services index) that no name diff and no
// non-passing check names is an instance added, changed or removed under
// an existing name with passing checks or none. Consul's HTTP API has no
// query for "what was written at index N", so such a move is attributed in
// two steps, each only when the one before left it unexplained for a grace
// period of three coalescing windows:
//
//  1. a probe: one non-blocking /v1/health/state/any read, whose
//     service-level check IDs are compared with what each service's last
//     fetch showed; the services that differ are fetched (an instance with
//     checks comes and goes with its checks);
//  2. a refetch of every service (an instance without checks, or one that
//     changed in place).
//
// The probe costs one large read (every check) where the refetch costs one
// request per service name; neither is on the path of a check change.

// unexplainedGrace, in coalescing windows, is how long a catalog move may
// stay unexplained before the next step.
const unexplainedGrace = 3

// reasonUnexplained is logged with the refetch of every service that an
// unexplained catalog move causes (tests match it).
const reasonUnexplained = "catalog changed without a visible diff"

// move is one unexplained catalog index.
type move struct {
	seen time.Time
	// probed: a probe read after this move has been started.
	probed bool
}

type probeResult struct {
	checks api.HealthChecks
	err    error
}

func (l *loop) startProbe() {
	l.probing = true
	for _, m := range l.unexplained {
		m.probed = true
	}
	l.log.Debug("probing every check for an unexplained catalog move", zap.Int("moves", len(l.unexplained)))
	ctx, client, done := l.ctx, l.w.client, l.probedCh
	l.wg.Go(func() {
		qctx, cancel := context.WithTimeout(ctx, requestMargin)
		checks, _, err := client.Health().State(api.HealthAny, (&api.QueryOptions{}).WithContext(qctx))
		cancel()
		select {
		case done <- probeResult{checks: checks, err: err}:
		case <-ctx.Done():
		}
	})
}

// onProbe names the services whose service-level checks differ from their
// last fetch. When it names none, the moves are check-less: refetch all.
func (l *loop) onProbe(r probeResult) {
	l.probing = false
	if r.err != nil {
		l.log.Debug("probe of every check failed", zap.Error(r.err))
		l.resyncAll(reasonUnexplained)
		return
	}
	got := map[string][]checkKey{}
	for _, c := range r.checks {
		if c == nil || c.ServiceID == "" {
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
		if !slices.Equal(keys, have) {
			l.markPending(name)
			l.probeNamed[name] = true
		}
	}
	l.log.Debug("probe done", zap.Int("named", len(l.probeNamed)))
	if len(l.probeNamed) == 0 {
		l.resyncAll(reasonUnexplained)
		return
	}
	now := time.Now()
	for _, m := range l.unexplained {
		if m.probed {
			m.seen = now
		}
	}
}

// unexplainedAt is when the next step for the unexplained catalog moves is
// due, false when none can be taken now: none left, a fetch or a probe in
// flight (it may explain them), or services a probe named not fetched yet.
func (l *loop) unexplainedAt() (time.Time, bool) {
	if len(l.unexplained) == 0 || l.inflight || l.probing {
		return time.Time{}, false
	}
	var at time.Time
	ok := false
	for _, m := range l.unexplained {
		if m.probed && len(l.probeNamed) > 0 {
			continue
		}
		if due := m.seen.Add(unexplainedGrace * l.w.opts.Coalesce); !ok || due.Before(at) {
			at, ok = due, true
		}
	}
	return at, ok
}

// checkUnexplained takes the next step for catalog moves unexplained past
// their grace period: a probe for those not yet probed, else a refetch of
// every service.
func (l *loop) checkUnexplained(now time.Time) {
	at, ok := l.unexplainedAt()
	if !ok || now.Before(at) {
		return
	}
	grace := unexplainedGrace * l.w.opts.Coalesce
	for _, m := range l.unexplained {
		if !m.probed && !now.Before(m.seen.Add(grace)) {
			l.startProbe()
			return
		}
	}
	l.resyncAll(reasonUnexplained)
}
