package retry

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// maxRand returns the largest value a random source may give: the upper
// bound (exclusive) minus one.
func maxRand(n int64) int64 { return n - 1 }

func zeroRand(int64) int64 { return 0 }

func TestBackoffBounds(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name  string
		p     *config.RetryPolicy
		n     int
		upper time.Duration // exclusive
	}{
		// Envoy's docs: 0-24 ms, 0-74 ms, 0-174 ms, then capped at 250 ms.
		{"default first retry", nil, 1, 25 * ms},
		{"default second retry", nil, 2, 75 * ms},
		{"default third retry", nil, 3, 175 * ms},
		{"default fourth retry is capped at 10x base", nil, 4, 250 * ms},
		{"default hundredth retry is capped", nil, 100, 250 * ms},
		{"zero fields mean the defaults", &config.RetryPolicy{}, 2, 75 * ms},
		{"custom base", &config.RetryPolicy{BackOffBase: 100 * ms}, 2, 300 * ms},
		{"custom base default max", &config.RetryPolicy{BackOffBase: 100 * ms}, 5, time.Second},
		{"custom max", &config.RetryPolicy{BackOffBase: 10 * ms, BackOffMax: 50 * ms}, 3, 50 * ms},
		{"retry number below one is the first", nil, 0, 25 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Backoff(tt.p, tt.n, zeroRand); got != 0 {
				t.Errorf("lowest draw = %v, want 0 (full jitter)", got)
			}
			if got, want := Backoff(tt.p, tt.n, maxRand), tt.upper-1; got != want {
				t.Errorf("highest draw = %v, want %v", got, want)
			}
			for range 200 {
				if got := Backoff(tt.p, tt.n, rand.Int64N); got < 0 || got >= tt.upper {
					t.Fatalf("Backoff = %v, outside [0, %v)", got, tt.upper)
				}
			}
		})
	}
}

func TestBackoffIsJittered(t *testing.T) {
	seen := map[time.Duration]bool{}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		seen[Backoff(nil, 3, r.Int64N)] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 draws gave %d distinct delays: not jittered", len(seen))
	}
}
