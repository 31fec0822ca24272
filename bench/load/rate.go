package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Latencies are sorted request latencies.
type Latencies []time.Duration

// Quantile is the q-quantile (0 ≤ q ≤ 1), nearest rank; 0 when empty.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	i := int(q*float64(len(l))+0.5) - 1
	return l[max(0, min(i, len(l)-1))]
}

// RateResult is one constant-rate run.
type RateResult struct {
	Sent     int
	Errors   int
	Late     int // requests that started more than 1 ms after their slot
	Lat      Latencies
	Duration time.Duration
}

// ConstantRate GETs url rate times a second for dur, from workers
// keep-alive connections; request i is due at start + i/rate. A latency
// is measured from the moment the request is written to the end of the
// body, so the generator's own timer jitter is not charged to the proxy;
// Late counts the requests that could not start on time (all workers
// busy), which would make the latencies too kind.
func ConstantRate(ctx context.Context, url string, rate, workers int, dur time.Duration) (RateResult, error) {
	tr := &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	total := int(dur.Seconds() * float64(rate))
	interval := time.Second / time.Duration(rate)
	// Warm the connections so that no dial is measured.
	// A failed warm-up request is retried (twice): it is reported by the
	// caller's error count only if the target stays broken.
	for range workers {
		var err error
		for range 3 {
			if err = get(client, url); err == nil {
				break
			}
		}
		if err != nil {
			return RateResult{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var next atomic.Int64
	lat := make([]time.Duration, total)
	var errs, late atomic.Int64
	start := time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				if d := time.Until(due); d > 0 {
					time.Sleep(d)
				} else if d < -time.Millisecond {
					late.Add(1)
				}
				t0 := time.Now()
				if err := get(client, url); err != nil {
					errs.Add(1)
					lat[i] = -1
					continue
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	r := RateResult{Sent: total, Errors: int(errs.Load()), Late: int(late.Load()), Duration: time.Since(start)}
	r.Lat = slices.DeleteFunc(lat, func(d time.Duration) bool { return d <= 0 })
	slices.Sort(r.Lat)
	return r, ctx.Err()
}

func get(c *http.Client, url string) error {
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", res.StatusCode)
	}
	return err
}
