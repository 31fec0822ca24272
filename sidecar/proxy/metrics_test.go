package proxy

import (
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCountByCode: concurrent requests of several status codes (the first
// of each code races to add its counter) are all counted, each under its
// own code label, out-of-range codes included.
func TestCountByCode(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	codes := []int{200, 503, 404, 200, 599, 1000, 0}
	want := map[int]int{}
	for _, c := range codes {
		want[c] += 50
	}
	var wg sync.WaitGroup
	for _, c := range codes {
		for range 50 {
			wg.Go(func() { m.cluster("api").count(c) })
		}
	}
	wg.Wait()
	for code, n := range want {
		label := map[int]string{200: "200", 503: "503", 404: "404", 599: "599", 1000: "1000", 0: "0"}[code]
		if got := testutil.ToFloat64(m.requests.WithLabelValues("api", label)); got != float64(n) {
			t.Errorf("code %d counted %v times, want %d", code, got, n)
		}
	}
	if got := testutil.CollectAndCount(m.requests); got != len(want) {
		t.Errorf("%d series, want one per code (%d)", got, len(want))
	}
}
