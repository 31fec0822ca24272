package discovery

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/consul/api"
)

// requestMargin bounds a request beyond the time Consul may legitimately
// take to answer it (the blocking wait, if any).
const requestMargin = 30 * time.Second

// update is one blocking-query response whose index moved.
type update[T any] struct {
	value T
	index uint64
	// reset: the index went backwards, or this is the first response after
	// an error: Consul may have been restarted or replaced, so anything
	// derived from earlier indexes may be stale.
	reset bool
}

// watchError is a failed query.
type watchError struct {
	source string
	err    error
}

// queryFunc runs one (blocking) query.
type queryFunc[T any] func(q *api.QueryOptions) (T, *api.QueryMeta, error)

// indexStep applies the index rules of Consul's "blocking queries"
// documentation to a response index got that follows a request made with
// WaitIndex prev. It returns the WaitIndex of the next request, whether the
// response may carry new content, and whether the index went backwards.
//
//   - An index of 0 is a Consul bug that would make every request return at
//     once (a hot loop): treat it as 1.
//   - An index lower than the previous one means the state was replaced
//     (a -dev agent restarted, a snapshot restored): reset to 0, which
//     restarts the blocking loop with an immediate query.
//   - An unchanged index is a timeout: nothing changed.
func indexStep(prev, got uint64) (next uint64, changed, reset bool) {
	if got == 0 {
		got = 1
	}
	switch {
	case prev == 0:
		return got, true, false
	case got < prev:
		return 0, true, true
	case got == prev:
		return prev, false, false
	default:
		return got, true, false
	}
}

// backoff is the wait before retry number attempt (1 for the first retry):
// exponential from min, capped at max, with "equal jitter" (half fixed, half
// random) so that watches failing together do not retry in lock-step and a
// retry never comes sooner than half the step.
func backoff(attempt int, minD, maxD time.Duration, rnd func() float64) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	d = min(d, maxD)
	half := d / 2
	return half + time.Duration(rnd()*float64(d-half))
}

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// watch runs one blocking query in a loop until ctx is done, sending each
// response whose index moved to out, and each failure to errs. After a
// failure, the next successful response is always sent, so the event loop
// learns that Consul is back.
func watch[T any](ctx context.Context, opts Options, source string, query queryFunc[T], out chan<- update[T], errs chan<- watchError) {
	var (
		index     uint64
		failures  int
		lastStart time.Time
	)
	for {
		// Consul's guidance: rate-limit a watch on a busy resource. Space
		// requests by the coalescing window; a change arriving after a
		// long quiet wait is not delayed.
		if !lastStart.IsZero() && !sleepCtx(ctx, opts.Coalesce-time.Since(lastStart)) {
			return
		}
		lastStart = time.Now()
		// Consul adds up to WaitTime/16 of jitter; past that and a margin,
		// the connection is dead without having said so (no RST).
		qctx, cancel := context.WithTimeout(ctx, opts.WaitTime+opts.WaitTime/16+requestMargin)
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: opts.WaitTime}).WithContext(qctx)
		v, meta, err := query(q)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			// Start over with a non-blocking query: the Consul we reach
			// next may be a restarted one whose index is below ours, and
			// Consul blocks a query until the index exceeds WaitIndex, so
			// keeping the old index could hide every change for WaitTime.
			index = 0
			select {
			case errs <- watchError{source: source, err: err}:
			case <-ctx.Done():
				return
			}
			if !sleepCtx(ctx, backoff(failures, opts.MinBackoff, opts.MaxBackoff, rand.Float64)) {
				return
			}
			continue
		}
		recovered := failures > 0
		failures = 0
		next, changed, reset := indexStep(index, meta.LastIndex)
		index = next
		if !changed && !recovered {
			continue
		}
		select {
		case out <- update[T]{value: v, index: max(meta.LastIndex, 1), reset: reset || recovered}:
		case <-ctx.Done():
			return
		}
	}
}

func randFloat() float64 { return rand.Float64() }
