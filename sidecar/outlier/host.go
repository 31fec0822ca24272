package outlier

import (
	"sync/atomic"
	"time"
)

// Host is one upstream host's outlier-detection state. Counters are
// written lock-free from the data path (like grpc-go's outlierdetection
// callCounter); the ejection state is written only by the Detector that
// owns the host and published atomically for the load balancer and the
// admin endpoint. The zero value is ready to use; a Host is reported to
// by its Detector once Detector.SetHosts included it.
type Host struct {
	// Address is host:port, for logs.
	Address string

	det atomic.Pointer[Detector] // nil: no outlier detection

	consecutive5xx   atomic.Uint32
	consecutiveGW    atomic.Uint32
	consecutiveLocal atomic.Uint32
	// bucket is the current interval's results: successes in the high
	// 32 bits, total in the low 32 bits, so the sweep swaps both at once.
	bucket atomic.Uint64
	// detected holds one bit per consecutive Reason waiting for the
	// detector's goroutine.
	detected atomic.Uint32

	ejected  atomic.Bool
	ejection atomic.Pointer[Ejection] // last ejection, nil if never

	// Owned by the detector (under its mutex).
	backoff uint32 // ejection time multiplier
	jitter  time.Duration
}

// Ejection describes a host's last ejection.
type Ejection struct {
	Reason Reason
	Count  uint32    // ejections of this host so far
	At     time.Time // when it was ejected
	Until  time.Time // when it may return (checked at the next interval)
}

// Ejected reports whether the host is ejected now.
func (h *Host) Ejected() bool { return h.ejected.Load() }

// LastEjection is the host's last ejection (nil if never ejected).
func (h *Host) LastEjection() *Ejection { return h.ejection.Load() }

const (
	successOne = 1<<32 | 1
	failureOne = 1
)

// Response records an upstream response with HTTP status code (external
// origin). 5xx responses count for consecutive_5xx, 502, 503 and 504 for
// consecutive_gateway_failure; any other code resets both (Envoy's
// DetectorHostMonitorImpl::putHttpResponseCode).
func (h *Host) Response(code int) {
	d := h.det.Load()
	if d == nil {
		return
	}
	cfg := d.cfg.Load()
	if cfg.SplitExternalLocalOriginErrors {
		// A response means the connection worked (Envoy reports
		// LOCAL_ORIGIN_CONNECT_SUCCESS when the pool is ready).
		resetIfSet(&h.consecutiveLocal)
	}
	h.putCode(d, cfg.Consecutive5xx, cfg.ConsecutiveGatewayFailure, code)
}

// LocalFailure records a local-origin failure: a connect failure or a
// reset (timeout false, mapped to 503 when errors are not split) or a
// timeout (mapped to 504), as Envoy's router reports them.
func (h *Host) LocalFailure(timeout bool) {
	d := h.det.Load()
	if d == nil {
		return
	}
	cfg := d.cfg.Load()
	if cfg.SplitExternalLocalOriginErrors {
		if h.consecutiveLocal.Add(1) == cfg.ConsecutiveLocalOriginFailure {
			h.detect(d, ConsecutiveLocalOriginFailure)
		}
		return
	}
	code := 503
	if timeout {
		code = 504
	}
	h.putCode(d, cfg.Consecutive5xx, cfg.ConsecutiveGatewayFailure, code)
}

// LocalSuccess records a connection that worked with no response to
// report (LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL, e.g. the TCP proxy): a local
// success when errors are split, a 200 otherwise.
func (h *Host) LocalSuccess() {
	d := h.det.Load()
	if d == nil {
		return
	}
	cfg := d.cfg.Load()
	if cfg.SplitExternalLocalOriginErrors {
		resetIfSet(&h.consecutiveLocal)
		return
	}
	h.putCode(d, cfg.Consecutive5xx, cfg.ConsecutiveGatewayFailure, 200)
}

func (h *Host) putCode(d *Detector, max5xx, maxGW uint32, code int) {
	if code < 500 || code > 599 {
		h.bucket.Add(successOne)
		resetIfSet(&h.consecutive5xx)
		resetIfSet(&h.consecutiveGW)
		return
	}
	h.bucket.Add(failureOne)
	if code >= 502 && code <= 504 {
		// Equality, not >=: the run is reported once; the detector
		// resets the counter when it handles it, as Envoy.
		if h.consecutiveGW.Add(1) == maxGW {
			h.detect(d, ConsecutiveGatewayFailure)
		}
	} else {
		resetIfSet(&h.consecutiveGW)
	}
	if h.consecutive5xx.Add(1) == max5xx {
		h.detect(d, Consecutive5xx)
	}
}

// resetIfSet avoids writing the shared cache line on every success.
func resetIfSet(c *atomic.Uint32) {
	if c.Load() != 0 {
		c.Store(0)
	}
}

func (h *Host) detect(d *Detector, r Reason) {
	h.detected.Or(1 << r)
	d.wakeUp()
}

func (h *Host) resetCounters() {
	h.consecutive5xx.Store(0)
	h.consecutiveGW.Store(0)
	h.consecutiveLocal.Store(0)
}
