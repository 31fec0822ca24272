package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/seed-a778acb4/consulate/bench/load"
	"github.com/seed-a778acb4/consulate/bench/procstat"
)

// round is one target's figures in one round. CPU and core figures are
// the proxy processes' (summed for two hops); zero for direct.
type round struct {
	RPS         float64 `json:"rps"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	CPUPerReqUS float64 `json:"proxy_cpu_us_per_req"`
	CoreBusy    float64 `json:"proxy_core_busy"` // proxy CPU seconds per wall second
	// RateCPUPerReqUS is the proxy CPU per request during the constant-rate
	// phase: every proxy at the same request rate, far from saturation, so
	// no proxy is credited for batching many ready connections per wake-up.
	RateCPUPerReqUS float64 `json:"proxy_cpu_us_per_req_at_rate"`
	UpstreamCPUUS   float64 `json:"upstream_cpu_us_per_req"`
	RSSLoadMiB      float64 `json:"rss_load_mib"`
	P50US           float64 `json:"p50_us"`
	P90US           float64 `json:"p90_us"`
	P99US           float64 `json:"p99_us"`
	MaxUS           float64 `json:"max_us"`
	RateErrors      int     `json:"rate_errors"`
	RateLate        int     `json:"rate_late"`
	RateSamples     int     `json:"rate_samples"`
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// procsCPU is the CPU time of every process tree in ps.
func procsCPU(ps []*child) (time.Duration, error) {
	var sum time.Duration
	for _, p := range ps {
		c, err := procstat.TreeCPU(p.pid())
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p.name, err)
		}
		sum += c
	}
	return sum, nil
}

// procsMem is procsRSS split into anonymous and file-backed memory.
func procsMem(ps []*child) procstat.Mem {
	var sum procstat.Mem
	for _, p := range ps {
		m, _ := procstat.TreeMemory(p.pid())
		sum.RSS, sum.Anon, sum.File = sum.RSS+m.RSS, sum.Anon+m.Anon, sum.File+m.File
	}
	return sum
}

func procsRSS(ps []*child) int64 {
	var sum int64
	for _, p := range ps {
		r, _ := procstat.TreeRSS(p.pid())
		sum += r
	}
	return sum
}

// peakRSS samples ps's RSS every 100 ms until stop is closed and returns
// the peak.
func peakRSS(ps []*child, stop <-chan struct{}) func() int64 {
	var peak int64
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			peak = max(peak, procsRSS(ps))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	return func() int64 { wg.Wait(); return peak }
}

// measure runs one round against t.
func (e *env) measure(ctx context.Context, t *target) (round, error) {
	var r round
	up := []*child{e.upstream}
	cpu0, err := procsCPU(t.procs)
	if err != nil {
		return r, err
	}
	upCPU0, _ := procsCPU(up)
	stop := make(chan struct{})
	peak := peakRSS(t.procs, stop)
	t0 := time.Now()
	var n int64
	if t.grpc {
		g, err := load.GRPC(ctx, t.addr, e.s.GRPCWorkers, e.s.Duration)
		if err != nil {
			close(stop)
			peak()
			return r, err
		}
		n, r.Errors = int64(g.Calls), int64(g.Errors)
		r.RPS = float64(g.Calls) / g.Duration.Seconds()
		r.P50US, r.P90US, r.P99US = us(g.Lat.Quantile(.5)), us(g.Lat.Quantile(.9)), us(g.Lat.Quantile(.99))
		r.MaxUS = us(g.Lat.Quantile(1))
	} else {
		w, err := load.Wrk(ctx, t.url, e.s.Conns, e.s.Duration, e.s.GenCPU)
		if err != nil {
			close(stop)
			peak()
			return r, err
		}
		n, r.Errors, r.RPS = w.Requests, w.Errors, w.RPS
	}
	wall := time.Since(t0)
	close(stop)
	r.RSSLoadMiB = mib(peak())
	cpu1, err := procsCPU(t.procs)
	if err != nil {
		return r, err
	}
	upCPU1, _ := procsCPU(up)
	r.Requests = n
	if n > 0 {
		r.CPUPerReqUS = us(cpu1-cpu0) / float64(n)
		r.UpstreamCPUUS = us(upCPU1-upCPU0) / float64(n)
	}
	r.CoreBusy = (cpu1 - cpu0).Seconds() / wall.Seconds()
	if t.grpc {
		return r, nil
	}
	rcpu0, err := procsCPU(t.procs)
	if err != nil {
		return r, err
	}
	cr, err := load.ConstantRate(ctx, t.url, e.s.Rate, e.s.RateWorkers, e.s.RateDuration)
	if err != nil {
		return r, fmt.Errorf("constant rate: %w", err)
	}
	rcpu1, err := procsCPU(t.procs)
	if err != nil {
		return r, err
	}
	if n := cr.Sent; n > 0 && len(t.procs) > 0 {
		r.RateCPUPerReqUS = us(rcpu1-rcpu0) / float64(n)
	}
	r.P50US, r.P90US, r.P99US = us(cr.Lat.Quantile(.5)), us(cr.Lat.Quantile(.9)), us(cr.Lat.Quantile(.99))
	r.MaxUS = us(cr.Lat.Quantile(1))
	r.RateErrors, r.RateLate, r.RateSamples = cr.Errors, cr.Late, len(cr.Lat)
	return r, nil
}

// manyResult is the sidecar holding many routes and clusters.
type manyResult struct {
	Routes      int     `json:"routes"`
	Clusters    int     `json:"clusters"`
	ReadyMS     float64 `json:"ready_ms"`
	RSSMiB      float64 `json:"rss_mib"`
	RSSServeMiB float64 `json:"rss_after_requests_mib"`
	// Anonymous and file-backed parts of the two.
	AnonMiB      float64 `json:"rss_anon_mib"`
	FileMiB      float64 `json:"rss_file_mib"`
	AnonServeMiB float64 `json:"rss_anon_after_requests_mib"`
	FileServeMiB float64 `json:"rss_file_after_requests_mib"`
	Error        string  `json:"error,omitempty"`
}

// measureMany starts a sidecar whose snapshot has s.Many routes and
// clusters, waits until the last virtual host answers, and reads its RSS
// before and after a few hundred requests spread over the hosts.
func (e *env) measureMany(ctx context.Context) (manyResult, error) {
	r := manyResult{Routes: e.s.Many, Clusters: e.s.Many}
	t0 := time.Now()
	c, err := start("bench-many", e.s.ProxyCPU, []string{"GOMAXPROCS=1"}, "", e.s.SidecarBin,
		"-proxy-id", "bench-many", "-control-plane", e.xdsAddr, "-admin-addr", "127.0.0.1:"+port(), "-log-level", "warn")
	if err != nil {
		return r, err
	}
	defer c.stop()
	last := fmt.Sprintf("svc-%05d", e.s.Many-1)
	if err := waitHTTP(ctx, c, e.targets["many"].url, last, 150*time.Second); err != nil {
		return r, err
	}
	r.ReadyMS = float64(time.Since(t0).Milliseconds())
	// Let the post-config garbage be collected (GC is paced, not forced).
	time.Sleep(2 * time.Second)
	m := procsMem([]*child{c})
	r.RSSMiB, r.AnonMiB, r.FileMiB = mib(m.RSS), mib(m.Anon), mib(m.File)
	for i := range 500 {
		host := fmt.Sprintf("svc-%05d", i*(e.s.Many/500))
		if err := waitHTTP(ctx, c, e.targets["many"].url, host, 5*time.Second); err != nil {
			return r, err
		}
	}
	m = procsMem([]*child{c})
	r.RSSServeMiB, r.AnonServeMiB, r.FileServeMiB = mib(m.RSS), mib(m.Anon), mib(m.File)
	return r, nil
}
