package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Breaker names one circuit breaker threshold
// (envoy.config.cluster.v3.CircuitBreakers.Thresholds).
type Breaker uint8

const (
	BreakerConnections Breaker = iota // max_connections
	BreakerPending                    // max_pending_requests
	BreakerRequests                   // max_requests
	BreakerRetries                    // max_retries or retry_budget
)

func (b Breaker) String() string {
	switch b {
	case BreakerConnections:
		return "max_connections"
	case BreakerPending:
		return "max_pending_requests"
	case BreakerRequests:
		return "max_requests"
	}
	return "max_retries"
}

// OverflowError is returned by a host's transport (RoundTrip) when a
// circuit breaker refused the connection the request waited for. The
// proxy answers 503 with response flag UO and x-envoy-overloaded: true.
type OverflowError struct {
	Cluster string
	Breaker Breaker
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("cluster %s: circuit breaker %s overflow", e.Cluster, e.Breaker)
}

// IsOverflow reports whether err is (or wraps) an *OverflowError.
func IsOverflow(err error) bool {
	var oe *OverflowError
	return errors.As(err, &oe)
}

// TryRequest reserves one request under max_requests; false means
// overflow (503 UO). DoneRequest must follow a successful TryRequest.
func (c *Cluster) TryRequest() bool { return c.Acquire() }

// DoneRequest ends a request reserved by TryRequest.
func (c *Cluster) DoneRequest() { c.Release() }

// Acquire is TryRequest.
func (c *Cluster) Acquire() bool {
	st := c.state
	if st.active.Add(1) > st.breakers().Limit(config.ThresholdRequests) {
		st.active.Add(-1)
		st.overflow[BreakerRequests].Add(1)
		return false
	}
	return true
}

// Release is DoneRequest.
func (c *Cluster) Release() { c.state.active.Add(-1) }

// TryRetry reserves one retry under max_retries, or, when the cluster has
// a retry_budget, under budget_percent of the active plus pending
// requests (at least min_retry_concurrency). false means overflow: Envoy
// then does not retry (upstream_rq_retry_overflow) and returns the last
// attempt's response. DoneRetry must follow a successful TryRetry, when
// the retry attempt ends.
func (c *Cluster) TryRetry() bool {
	st := c.state
	if st.retries.Add(1) > st.retryLimit() {
		st.retries.Add(-1)
		st.overflow[BreakerRetries].Add(1)
		return false
	}
	return true
}

// DoneRetry ends a retry reserved by TryRetry.
func (c *Cluster) DoneRetry() { c.state.retries.Add(-1) }

func (st *state) breakers() *config.CircuitBreakers { return st.cb.Load() }

func (st *state) retryLimit() int64 {
	cb := st.breakers()
	if rb := cb.RetryBudget; rb != nil {
		// Envoy: budget_percent of active requests plus pending ones,
		// never below min_retry_concurrency.
		n := int64(rb.BudgetPercent / 100 * float64(st.active.Load()+st.pending.Load()))
		return max(n, int64(rb.MinRetryConcurrency))
	}
	return cb.Limit(config.ThresholdRetries)
}

// acquireConn admits one new connection under max_connections. At the
// limit, a pool dial (wait) waits until a connection of the cluster closes,
// for at most the connect timeout, then overflows; the TCP proxy's dial
// (no wait) overflows at once, as Envoy's TCP proxy does.
func (st *state) acquireConn(ctx context.Context, wait time.Duration, canWait bool) error {
	maxConns := st.breakers().Limit(config.ThresholdConnections)
	if st.conns.Add(1) <= maxConns {
		return nil
	}
	st.conns.Add(-1)
	if !canWait {
		st.overflow[BreakerConnections].Add(1)
		return &OverflowError{Cluster: st.name, Breaker: BreakerConnections}
	}
	st.dialWaiters.Add(1)
	defer st.dialWaiters.Add(-1)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		freed := st.freed.Load()
		if freed == nil {
			ch := make(chan struct{})
			st.freed.CompareAndSwap(nil, &ch)
			freed = st.freed.Load()
		}
		if st.conns.Add(1) <= maxConns {
			return nil
		}
		st.conns.Add(-1)
		select {
		case <-*freed:
		case <-timer.C:
			st.overflow[BreakerConnections].Add(1)
			return &OverflowError{Cluster: st.name, Breaker: BreakerConnections}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// releaseConn frees a connection slot and wakes the waiting dials.
func (st *state) releaseConn() {
	st.conns.Add(-1)
	if st.dialWaiters.Load() > 0 {
		next := make(chan struct{})
		if old := st.freed.Swap(&next); old != nil {
			close(*old)
		}
	}
}

// breakerTransport is an HTTP/2 host's RoundTripper: the pool, plus
// max_pending_requests. A request is pending while it waits for a
// connection (Envoy's definition); that can only happen when the cluster
// is at max_connections, so below it the request goes straight to the
// pool. At the limit, the request counts as pending until it gets a
// connection (httptrace GotConn): an idle one handed over by the pool, or
// a new one once a slot frees. Past max_pending_requests it overflows.
type breakerTransport struct{ h *Host }

func (b breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	st := b.h.st
	cb := st.breakers()
	if st.conns.Load() < cb.Limit(config.ThresholdConnections) {
		return b.h.h2Transport().RoundTrip(req)
	}
	if st.pending.Add(1) > cb.Limit(config.ThresholdPendingRequests) {
		st.pending.Add(-1)
		st.overflow[BreakerPending].Add(1)
		return nil, &OverflowError{Cluster: st.name, Breaker: BreakerPending}
	}
	var done atomic.Bool
	finish := func() {
		if done.CompareAndSwap(false, true) {
			st.pending.Add(-1)
		}
	}
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { finish() }}
	res, err := b.h.h2Transport().RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	finish()
	return res, err
}
