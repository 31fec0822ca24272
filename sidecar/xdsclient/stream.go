package xdsclient

import (
	"context"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// adsStream is one open ADS stream, SotW or Delta. Only the event loop
// calls subscribe, ack and nack; only the receive goroutine calls recv.
type adsStream interface {
	// subscribe sets the full set of names wanted for typeURL ("*" for
	// wildcard).
	subscribe(typeURL string, names []string) error
	ack(u *update) error
	nack(u *update, cause error) error
	recv() (*update, error)
}

// nackKey identifies a rejection, to recognise the server resending it.
type nackKey struct{ version, detail string }

// pendingNack is a NACK held back because it repeats the previous one.
type pendingNack struct {
	u     *update
	cause error
	due   time.Time
}

// runStream runs one ADS stream until it fails or ctx ends. got reports
// whether any response arrived (the connection worked; reset backoff).
func (c *Client) runStream(ctx context.Context, conn *grpc.ClientConn, last **store) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	recvDone := make(chan struct{})
	defer func() {
		cancel()
		<-recvDone
	}()
	var s adsStream
	if c.opts.Protocol == SotW {
		s, err = openSotW(sctx, conn, c.opts.NodeID)
	} else {
		s, err = openDelta(sctx, conn, c.opts.NodeID)
	}
	if err != nil {
		close(recvDone)
		return false, err
	}
	updates := make(chan *update)
	recvErr := make(chan error, 1)
	go func() {
		defer close(recvDone)
		for {
			u, err := s.recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case updates <- u:
			case <-sctx.Done():
				return
			}
		}
	}()

	subs := make(map[string][]string)
	for _, t := range []string{ClusterType, ListenerType} {
		if err := s.subscribe(t, []string{"*"}); err != nil {
			return false, err
		}
		subs[t] = []string{"*"}
	}
	c.m.connected.Set(1)
	c.status.set(func(s *Status) { s.Connected, s.Waiting = true, nil })
	defer func() {
		c.m.connected.Set(0)
		c.status.set(func(s *Status) { s.Connected, s.Waiting = false, nil })
	}()
	c.log.Info("xds stream open")

	st := newStore()
	lastNack := make(map[string]nackKey)
	repeats := make(map[string]int)
	pending := make(map[string]*pendingNack)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	warm := newWarming(func(missing []string) {
		c.status.set(func(s *Status) { s.Waiting = missing })
	})
	fetchTimer := time.NewTimer(time.Hour)
	defer fetchTimer.Stop()
	for {
		select {
		case <-sctx.Done():
			return got, sctx.Err()
		case err := <-recvErr:
			return got, err
		case u := <-updates:
			got = true
			delete(pending, u.typeURL)
			next, missing, cause := c.handle(ctx, st, u, last, warm.giveUp)
			if cause != nil {
				c.m.rejections.WithLabelValues(shortType(u.typeURL)).Inc()
				c.status.set(func(s *Status) {
					if s.Rejected == nil {
						s.Rejected = make(map[string]Rejection)
					}
					s.Rejected[shortType(u.typeURL)] = Rejection{Version: u.version, Error: cause.Error(), At: time.Now()}
				})
				key := nackKey{u.version, cause.Error()}
				if lastNack[u.typeURL] == key {
					repeats[u.typeURL]++
				} else {
					lastNack[u.typeURL], repeats[u.typeURL] = key, 0
				}
				delay := nackDelay(repeats[u.typeURL])
				c.log.Warn("xds update rejected (NACK)",
					zap.String("type", shortType(u.typeURL)), zap.String("version", u.version),
					zap.String("nonce", u.nonce), zap.Error(cause), zap.Int("repeats", repeats[u.typeURL]),
					zap.Duration("nack_delay", delay))
				if delay == 0 {
					if err := s.nack(u, cause); err != nil {
						return got, err
					}
				} else {
					pending[u.typeURL] = &pendingNack{u: u, cause: cause, due: time.Now().Add(delay)}
				}
			} else {
				st = next
				warm.track(st, missing, time.Now())
				delete(lastNack, u.typeURL)
				c.status.set(func(s *Status) { delete(s.Rejected, shortType(u.typeURL)) })
				delete(repeats, u.typeURL)
				c.m.updates.WithLabelValues(shortType(u.typeURL)).Inc()
				c.log.Debug("xds update accepted (ACK)",
					zap.String("type", shortType(u.typeURL)), zap.String("version", u.version),
					zap.Int("resources", len(u.resources)), zap.Int("removed", len(u.removed)))
				if err := s.ack(u); err != nil {
					return got, err
				}
			}
			routes, eps := st.wanted()
			for _, w := range []struct {
				typeURL string
				names   []string
			}{{EndpointType, eps}, {RouteType, routes}} {
				cur, ok := subs[w.typeURL]
				if (!ok && len(w.names) == 0) || slices.Equal(cur, w.names) {
					continue
				}
				if err := s.subscribe(w.typeURL, w.names); err != nil {
					return got, err
				}
				subs[w.typeURL] = w.names
			}
		case now := <-fetchTimer.C:
			if expired := warm.expire(st, now); len(expired) > 0 {
				names := make([]string, 0, len(expired))
				for _, r := range expired {
					names = append(names, r.String())
				}
				c.log.Warn("initial fetch timeout: proceeding without resources the control plane has not sent", zap.Strings("resources", names))
				missing, err := c.tryApply(ctx, st, last, warm.giveUp, "initial_fetch_timeout", "")
				if err != nil {
					// No response to NACK: the config stays as it was.
					c.log.Error("config refused after initial fetch timeout", zap.Error(err))
				} else {
					warm.track(st, missing, now)
				}
			}
		case now := <-timer.C:
			for t, p := range pending {
				if !now.Before(p.due) {
					delete(pending, t)
					if err := s.nack(p.u, p.cause); err != nil {
						return got, err
					}
				}
			}
		}
		resetTimer(timer, pending)
		if at := warm.deadline(st); at.IsZero() {
			fetchTimer.Reset(time.Hour)
		} else {
			fetchTimer.Reset(max(time.Until(at), 0))
		}
	}
}

// resetTimer arms timer for the earliest pending NACK.
func resetTimer(timer *time.Timer, pending map[string]*pendingNack) {
	var due time.Time
	for _, p := range pending {
		if due.IsZero() || p.due.Before(due) {
			due = p.due
		}
	}
	if due.IsZero() {
		timer.Reset(time.Hour)
		return
	}
	timer.Reset(max(time.Until(due), 0))
}
