package discovery

import (
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// unreachableLogEvery spaces the repeated "still unreachable" warnings.
const unreachableLogEvery = 30 * time.Second

// Query names, as logged.
const (
	sourceCatalog = "catalog/services"
	sourceFetch   = "health/service"
)

func checksSource(status string) string { return "health/state/" + status }

func entriesSource(kind mesh.EntryKind) string { return "config/" + string(kind) }

// unreachable notes a failed query.
func (l *loop) unreachable(source string, err error) {
	now := time.Now()
	l.failing[source] = true
	if l.unreachableSince.IsZero() {
		l.unreachableSince = now
	} else if now.Sub(l.lastUnreachableLog) < unreachableLogEvery {
		return
	}
	l.lastUnreachableLog = now
	fields := []zap.Field{
		zap.Time("unreachable_since", l.unreachableSince),
		zap.String("query", source),
		zap.Error(err),
	}
	if s := l.w.Current(); s != nil {
		// Static stability: what was last seen keeps being served.
		l.log.Warn(msgUnreachable, append(fields, zap.Uint64("snapshot_index", s.Index))...)
	} else {
		l.log.Warn(msgUnreachableNoSnapshot, fields...)
	}
}

// The warnings while Consul is unreachable (operators and tests match them).
const (
	msgUnreachable           = "consul unreachable, serving the last snapshot"
	msgUnreachableNoSnapshot = "consul unreachable, no snapshot yet"
)

// reachable notes a successful query. When it was the last failing one,
// Consul is back.
func (l *loop) reachable(source string) {
	if !l.failing[source] {
		return
	}
	delete(l.failing, source)
	if len(l.failing) > 0 {
		return
	}
	l.log.Info("consul reachable again",
		zap.Time("unreachable_since", l.unreachableSince),
		zap.Duration("unreachable_for", time.Since(l.unreachableSince)))
	l.unreachableSince = time.Time{}
	// Consul may have restarted and lost or replayed state while we could
	// not see it; indexes cannot be trusted across that gap.
	l.seenIndex = 0
	l.resyncAll("consul reachable again")
}
