package retry

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// BenchmarkRetriable is the per-attempt decision on the hot path: reading
// the response outcome and evaluating a typical policy.
func BenchmarkRetriable(b *testing.B) {
	p := &config.RetryPolicy{RetryOn: config.Retry5xx | config.RetryGRPCUnavailable | config.RetryRetriableStatusCodes, RetriableStatusCodes: []uint32{429}}
	h := http.Header{"Content-Type": {"application/json"}}
	b.ReportAllocs()
	for b.Loop() {
		if Retriable(p, ResponseOutcome(200, h)) {
			b.Fatal("retried a 200")
		}
	}
}

func BenchmarkBackoff(b *testing.B) {
	p := &config.RetryPolicy{BackOffBase: 25 * time.Millisecond, BackOffMax: 250 * time.Millisecond}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		Backoff(p, n%5+1, rand.Int64N)
	}
}
