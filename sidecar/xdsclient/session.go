package xdsclient

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
)

// session is the state of one ADS stream, owned by runStream's loop.
type session struct {
	c    *Client
	s    adsStream
	last **store // the store behind the published config (outlives streams)
	st   *store  // this stream's accepted resources

	subs     map[string][]string // type URL → names subscribed
	lastNack map[string]nackKey
	repeats  map[string]int
	pending  map[string]*pendingNack
	warm     *warming
}

// onUpdate decodes, applies and ACKs or NACKs one response, then adjusts
// the RDS and EDS subscriptions to what the accepted listeners and
// clusters name.
func (ss *session) onUpdate(ctx context.Context, u *update) error {
	c, typ := ss.c, shortType(u.typeURL)
	delete(ss.pending, u.typeURL) // a newer response supersedes a held NACK
	next, missing, cause := c.handle(ctx, ss.st, u, ss.last, ss.warm.giveUp)
	if cause != nil {
		if err := ss.reject(u, cause); err != nil {
			return err
		}
	} else {
		ss.st = next
		ss.warm.track(next, missing, time.Now())
		delete(ss.lastNack, u.typeURL)
		delete(ss.repeats, u.typeURL)
		c.status.set(func(s *Status) { delete(s.Rejected, typ) })
		c.m.updates.WithLabelValues(typ).Inc()
		c.log.Debug("xds update accepted (ACK)",
			zap.String("type", typ), zap.String("version", u.version),
			zap.Int("resources", len(u.resources)), zap.Int("removed", len(u.removed)))
		if err := ss.s.ack(u); err != nil {
			return err
		}
	}
	return ss.resubscribe()
}

// reject NACKs u, at once the first time and with a growing delay when the
// server keeps resending the same rejected version.
func (ss *session) reject(u *update, cause error) error {
	c, typ := ss.c, shortType(u.typeURL)
	c.m.rejections.WithLabelValues(typ).Inc()
	c.status.set(func(s *Status) {
		if s.Rejected == nil {
			s.Rejected = make(map[string]Rejection)
		}
		s.Rejected[typ] = Rejection{Version: u.version, Error: cause.Error(), At: time.Now()}
	})
	key := nackKey{u.version, cause.Error()}
	if ss.lastNack[u.typeURL] == key {
		ss.repeats[u.typeURL]++
	} else {
		ss.lastNack[u.typeURL], ss.repeats[u.typeURL] = key, 0
	}
	delay := nackDelay(ss.repeats[u.typeURL])
	c.log.Warn("xds update rejected (NACK)",
		zap.String("type", typ), zap.String("version", u.version),
		zap.String("nonce", u.nonce), zap.Error(cause), zap.Int("repeats", ss.repeats[u.typeURL]),
		zap.Duration("nack_delay", delay))
	if delay == 0 {
		return ss.s.nack(u, cause)
	}
	ss.pending[u.typeURL] = &pendingNack{u: u, cause: cause, due: time.Now().Add(delay)}
	return nil
}

// resubscribe sends RDS and EDS subscription changes.
func (ss *session) resubscribe() error {
	routes, eps := ss.st.wanted()
	for _, w := range []struct {
		typeURL string
		names   []string
	}{{EndpointType, eps}, {RouteType, routes}} {
		cur, ok := ss.subs[w.typeURL]
		if (!ok && len(w.names) == 0) || slices.Equal(cur, w.names) {
			continue
		}
		if err := ss.s.subscribe(w.typeURL, w.names); err != nil {
			return err
		}
		ss.subs[w.typeURL] = w.names
	}
	return nil
}

// onFetchTimeout gives up waiting for resources past their initial fetch
// timeout and applies what there is.
func (ss *session) onFetchTimeout(ctx context.Context, now time.Time) {
	c := ss.c
	expired := ss.warm.expire(ss.st, now)
	if len(expired) == 0 {
		return
	}
	names := make([]string, 0, len(expired))
	for _, r := range expired {
		names = append(names, r.String())
	}
	c.log.Warn("initial fetch timeout: proceeding without resources the control plane has not sent", zap.Strings("resources", names))
	missing, err := c.tryApply(ctx, ss.st, ss.last, ss.warm.giveUp, "initial_fetch_timeout", "")
	if err != nil {
		// No response to NACK: the running config stays.
		c.log.Error("config refused after initial fetch timeout", zap.Error(err))
		return
	}
	ss.warm.track(ss.st, missing, now)
}

// sendDueNACKs sends the held NACKs whose time has come.
func (ss *session) sendDueNACKs(now time.Time) error {
	for t, p := range ss.pending {
		if !now.Before(p.due) {
			delete(ss.pending, t)
			if err := ss.s.nack(p.u, p.cause); err != nil {
				return err
			}
		}
	}
	return nil
}

// nextNACK is when the earliest held NACK is due (zero: none).
func (ss *session) nextNACK() time.Time {
	var due time.Time
	for _, p := range ss.pending {
		if due.IsZero() || p.due.Before(due) {
			due = p.due
		}
	}
	return due
}
