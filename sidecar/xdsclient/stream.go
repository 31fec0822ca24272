package xdsclient

import (
	"context"
	"time"

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

	ss := &session{c: c, s: s, last: last, st: newStore(),
		subs: make(map[string][]string), lastNack: make(map[string]nackKey),
		repeats: make(map[string]int), pending: make(map[string]*pendingNack)}
	ss.warm = newWarming(func(missing []string) {
		c.status.set(func(s *Status) { s.Waiting = missing })
	})
	for _, t := range []string{ClusterType, ListenerType} {
		if err := s.subscribe(t, []string{"*"}); err != nil {
			return false, err
		}
		ss.subs[t] = []string{"*"}
	}
	c.m.connected.Set(1)
	c.status.set(func(s *Status) { s.Connected, s.Waiting = true, nil })
	defer func() {
		c.m.connected.Set(0)
		c.status.set(func(s *Status) { s.Connected, s.Waiting = false, nil })
	}()
	c.log.Info("xds stream open")

	nackTimer := time.NewTimer(time.Hour)
	defer nackTimer.Stop()
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
			err = ss.onUpdate(ctx, u)
		case now := <-fetchTimer.C:
			ss.onFetchTimeout(ctx, now)
		case now := <-nackTimer.C:
			err = ss.sendDueNACKs(now)
		}
		if err != nil {
			return got, err
		}
		nackTimer.Reset(untilOrHour(ss.nextNACK()))
		fetchTimer.Reset(untilOrHour(ss.warm.deadline(ss.st)))
	}
}

// untilOrHour is the wait until t, or an hour when t is zero (nothing
// scheduled; the loop re-arms after every event anyway).
func untilOrHour(t time.Time) time.Duration {
	if t.IsZero() {
		return time.Hour
	}
	return max(time.Until(t), 0)
}
