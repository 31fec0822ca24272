package discovery

import (
	"testing"
	"time"
)

func TestIndexStep(t *testing.T) {
	tests := []struct {
		name               string
		prev, got          uint64
		next               uint64
		changed, wantReset bool
	}{
		{"first response", 0, 42, 42, true, false},
		{"index moved", 42, 50, 50, true, false},
		{"timeout, nothing changed", 50, 50, 50, false, false},
		{"went backwards: reset to 0", 50, 7, 0, true, true},
		{"zero on first response is treated as 1", 0, 0, 1, true, false},
		{"zero after 1 is no change, not a hot loop", 1, 0, 1, false, false},
		{"zero after a real index is a reset", 9, 0, 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, changed, reset := indexStep(tt.prev, tt.got)
			if next != tt.next || changed != tt.changed || reset != tt.wantReset {
				t.Errorf("indexStep(%d, %d) = %d, %v, %v; want %d, %v, %v", tt.prev, tt.got, next, changed, reset, tt.next, tt.changed, tt.wantReset)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	const minD, maxD = 100 * time.Millisecond, 30 * time.Second
	tests := []struct {
		name    string
		attempt int
		step    time.Duration
	}{
		{"first retry", 1, 100 * time.Millisecond},
		{"doubles", 2, 200 * time.Millisecond},
		{"keeps doubling", 5, 1600 * time.Millisecond},
		{"capped", 10, maxD},
		{"stays capped", 1000, maxD},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo := backoff(tt.attempt, minD, maxD, func() float64 { return 0 })
			hi := backoff(tt.attempt, minD, maxD, func() float64 { return 1 })
			if lo != tt.step/2 || hi != tt.step {
				t.Errorf("backoff(%d) spans [%s, %s], want [%s, %s]", tt.attempt, lo, hi, tt.step/2, tt.step)
			}
		})
	}
}
