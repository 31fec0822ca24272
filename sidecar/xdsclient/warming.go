package xdsclient

import "time"

// warming tracks, per stream, since when each missing referenced resource
// has been awaited, and which ones outlived their initial fetch timeout
// (Envoy: ConfigSource.initial_fetch_timeout, default 15 s, after which
// the listener or cluster finishes warming without the resource).
type warming struct {
	since  map[ref]time.Time
	giveUp map[ref]bool
	report func(missing []string) // may be nil
}

func newWarming(report func([]string)) *warming {
	return &warming{since: make(map[ref]time.Time), giveUp: make(map[ref]bool), report: report}
}

// track records what is missing now.
func (w *warming) track(st *store, missing []ref, now time.Time) {
	if w.report != nil {
		names := make([]string, 0, len(missing))
		for _, r := range missing {
			names = append(names, r.String())
		}
		w.report(names)
	}
	cur := make(map[ref]bool, len(missing))
	for _, r := range missing {
		if r.name == "" {
			continue // an unanswered wildcard type is waited for without limit
		}
		cur[r] = true
		if _, ok := w.since[r]; !ok {
			w.since[r] = now
		}
	}
	for r := range w.since {
		if !cur[r] {
			delete(w.since, r)
		}
	}
	for r := range w.giveUp {
		if st.has(r) {
			delete(w.giveUp, r) // it arrived after all
		}
	}
}

// deadline returns when the next awaited resource times out (zero: none).
func (w *warming) deadline(st *store) time.Time {
	var next time.Time
	for r, since := range w.since {
		d := st.fetchTimeout(r)
		if d <= 0 {
			continue
		}
		if at := since.Add(d); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}

// expire gives up on every resource awaited past its timeout and returns
// them.
func (w *warming) expire(st *store, now time.Time) []ref {
	var out []ref
	for r, since := range w.since {
		if d := st.fetchTimeout(r); d > 0 && !now.Before(since.Add(d)) {
			w.giveUp[r] = true
			delete(w.since, r)
			out = append(out, r)
		}
	}
	return out
}
