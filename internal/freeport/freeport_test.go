package freeport

import "testing"

func TestTakeDistinctBelowEphemeralRange(t *testing.T) {
	start := ephemeralStart()
	seen := map[int]bool{}
	for range 3 {
		ps, err := Take(10)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if seen[p] {
				t.Errorf("port %d handed out twice", p)
			}
			if start >= 20000 && p >= start {
				t.Errorf("port %d is in the ephemeral range (from %d)", p, start)
			}
			seen[p] = true
		}
	}
}
