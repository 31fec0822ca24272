package xdsclient

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with full jitter: attempt n waits a
// uniformly random duration in [0, min(max, base·2ⁿ)) ("Exponential
// Backoff And Jitter", AWS architecture blog; grpc-go uses the same shape).
type backoff struct {
	base, max time.Duration
}

func (b backoff) delay(attempt int) time.Duration {
	d := b.max
	if attempt < 32 {
		if e := b.base << attempt; e > 0 && e < b.max {
			d = e
		}
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// nackDelay spaces out repeated identical NACKs: go-control-plane's
// snapshot cache answers a NACK by resending the same version at once,
// which would otherwise spin (DESIGN.md, facts learned). The first NACK
// goes out immediately; repeats wait 100 ms, 200 ms, ... up to 5 s (a
// held NACK also holds back the server's next version for that type, so
// the cap bounds how late a fix can arrive).
func nackDelay(repeats int) time.Duration {
	if repeats <= 0 {
		return 0
	}
	d := 100 * time.Millisecond << min(repeats-1, 10)
	return min(d, 5*time.Second)
}
