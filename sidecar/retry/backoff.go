package retry

import (
	"math"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Envoy's retry_back_off defaults.
const (
	DefaultBase = 25 * time.Millisecond
	maxFactor   = 10
)

// Backoff is the wait before retry n (1 for the first retry): Envoy's
// jittered exponential back-off, a uniformly random duration in
// [0, min((2^n − 1) × base, max)). randN(k) must return a uniform value in
// [0, k) (math/rand/v2's Int64N). A zero base means 25 ms; a zero max
// means 10 × base.
func Backoff(p *config.RetryPolicy, n int, randN func(int64) int64) time.Duration {
	base, max := DefaultBase, time.Duration(0)
	if p != nil {
		if p.BackOffBase > 0 {
			base = p.BackOffBase
		}
		max = p.BackOffMax
	}
	if max <= 0 {
		max = maxFactor * base
	}
	if n < 1 {
		n = 1
	}
	upper := max
	// (2^n − 1) × base without overflow: past 62 doublings it is above
	// any max anyway.
	if n < 62 {
		if f := int64(1)<<n - 1; f <= math.MaxInt64/int64(base) {
			upper = min(time.Duration(f)*base, max)
		}
	}
	if upper <= 0 {
		return 0
	}
	return time.Duration(randN(int64(upper)))
}
