package outlier

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Clock tells the time; tests inject a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// Event is one ejection or return to service.
type Event struct {
	Host    *Host
	Reason  Reason
	Ejected bool          // false: the host returned to service
	Count   uint32        // the host's ejections so far
	For     time.Duration // ejection: planned duration; return: time spent ejected
}

// Options configure a Detector.
type Options struct {
	Cluster string
	Log     *zap.Logger
	Clock   Clock // default: the system clock
	// Rand returns a uniform int in [0, n); default math/rand/v2.IntN.
	Rand func(n int) int
	// OnChange is called after hosts were ejected or returned to service,
	// from the goroutine that called Process or Sweep, with no lock held.
	OnChange func()
	// OnEvent observes every ejection and return (metrics).
	OnEvent func(Event)
}

// Detector is one cluster's outlier detector (Cluster.outlier_detection).
type Detector struct {
	opts Options
	cfg  atomic.Pointer[config.OutlierDetection]
	wake chan struct{}

	mu       sync.Mutex
	hosts    []*Host
	ejected  int // hosts ejected now
	overflow atomic.Uint64
}

// New returns a detector for cfg with no hosts.
func New(cfg *config.OutlierDetection, opts Options) *Detector {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	if opts.Rand == nil {
		opts.Rand = rand.IntN
	}
	d := &Detector{opts: opts, wake: make(chan struct{}, 1)}
	d.cfg.Store(cfg)
	return d
}

// Defaults is Envoy's outlier_detection with every field unset.
func Defaults() config.OutlierDetection {
	return config.OutlierDetection{
		Consecutive5xx: 5, ConsecutiveGatewayFailure: 5, ConsecutiveLocalOriginFailure: 5,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second,
		MaxEjectionPercent:      10,
		EnforcingConsecutive5xx: 100, EnforcingConsecutiveLocalOriginFailure: 100, EnforcingSuccessRate: 100,
		SuccessRateMinimumHosts: 5, SuccessRateRequestVolume: 100, SuccessRateStdevFactor: 1900,
		FailurePercentageMinimumHosts: 5, FailurePercentageRequestVolume: 50, FailurePercentageThreshold: 85,
	}
}

// SetConfig replaces the configuration; ejection state is kept.
func (d *Detector) SetConfig(cfg *config.OutlierDetection) { d.cfg.Store(cfg) }

// Config is the current configuration.
func (d *Detector) Config() *config.OutlierDetection { return d.cfg.Load() }

// Overflows counts ejections refused by max_ejection_percent.
func (d *Detector) Overflows() uint64 { return d.overflow.Load() }

// Ejected is the number of hosts ejected now.
func (d *Detector) Ejected() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ejected
}

// SetHosts makes hosts the detector's set: new ones start reporting to it,
// removed ones stop and lose their ejection. The ejection state of hosts
// kept is carried.
func (d *Detector) SetHosts(hosts []*Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keep := make(map[*Host]bool, len(hosts))
	for _, h := range hosts {
		keep[h] = true
		h.det.Store(d)
	}
	for _, h := range d.hosts {
		if !keep[h] {
			detach(h)
		}
	}
	d.hosts = append(d.hosts[:0:0], hosts...)
	d.ejected = 0
	for _, h := range hosts {
		if h.ejected.Load() {
			d.ejected++
		}
	}
}

// Release detaches every host and returns the ejected ones to service
// (outlier detection was removed from the cluster).
func (d *Detector) Release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, h := range d.hosts {
		detach(h)
	}
	d.hosts, d.ejected = nil, 0
}

func detach(h *Host) {
	h.det.Store(nil)
	h.ejected.Store(false)
	h.backoff = 0
	h.resetCounters()
	h.detected.Store(0)
}

func (d *Detector) wakeUp() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run handles consecutive-failure detections as they come and sweeps
// every interval, until ctx is done.
func (d *Detector) Run(ctx context.Context) {
	t := time.NewTimer(d.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			d.Process()
		case <-t.C:
			d.Sweep()
			t.Reset(d.interval())
		}
	}
}

func (d *Detector) interval() time.Duration {
	if i := d.cfg.Load().Interval; i > 0 {
		return i
	}
	return 10 * time.Second
}

// Process ejects the hosts whose consecutive-failure counters reached
// their threshold (Envoy ejects these at once, not at the interval).
func (d *Detector) Process() {
	now := d.opts.Clock.Now()
	changed := false
	d.mu.Lock()
	cfg := d.cfg.Load()
	for _, h := range d.hosts {
		if h.detected.Load() == 0 {
			continue
		}
		bits := h.detected.Swap(0)
		for _, r := range [...]Reason{Consecutive5xx, ConsecutiveGatewayFailure, ConsecutiveLocalOriginFailure} {
			if bits&(1<<r) == 0 {
				continue
			}
			changed = d.eject(cfg, h, r, now) || changed
			// Reset the run so that a new one is detected even without
			// an interleaved success (Envoy does the same).
			switch r {
			case Consecutive5xx:
				h.consecutive5xx.Store(0)
			case ConsecutiveGatewayFailure:
				h.consecutiveGW.Store(0)
			default:
				h.consecutiveLocal.Store(0)
			}
		}
	}
	d.mu.Unlock()
	if changed && d.opts.OnChange != nil {
		d.opts.OnChange()
	}
}

// enforcing is the percent chance that a detection ejects.
func enforcing(cfg *config.OutlierDetection, r Reason) uint32 {
	switch r {
	case Consecutive5xx:
		return cfg.EnforcingConsecutive5xx
	case ConsecutiveGatewayFailure:
		return cfg.EnforcingConsecutiveGatewayFailure
	case ConsecutiveLocalOriginFailure:
		return cfg.EnforcingConsecutiveLocalOriginFailure
	case SuccessRate:
		return cfg.EnforcingSuccessRate
	}
	return cfg.EnforcingFailurePercentage
}

// eject follows Envoy's DetectorImpl::ejectHost: max_ejection_percent of
// all hosts (see below), then the
// enforcing_* percentage; the ejection time is base_ejection_time × the
// host's multiplier, which grows with each ejection up to
// max_ejection_time, plus a jitter up to max_ejection_time_jitter.
// Called with d.mu held.
func (d *Detector) eject(cfg *config.OutlierDetection, h *Host, r Reason, now time.Time) bool {
	if h.ejected.Load() {
		return false
	}
	// Envoy's ejectHost (before 1.28, the versions Consul 1.14 supports;
	// grpc-go does the same): eject while the hosts already ejected are
	// below max_ejection_percent, so one host can always be ejected when
	// the percentage is above 0. Envoy 1.28+ made that first ejection
	// depend on always_eject_one_host, which the decoder refuses.
	maxPct := float64(min(100, cfg.MaxEjectionPercent))
	if 100*float64(d.ejected)/float64(len(d.hosts)) >= maxPct {
		d.overflow.Add(1)
		d.opts.Log.Debug("outlier ejection refused by max_ejection_percent",
			zap.String("cluster", d.opts.Cluster), zap.String("host", h.Address), zap.Stringer("reason", r))
		return false
	}
	if uint32(d.opts.Rand(100)) >= enforcing(cfg, r) {
		return false
	}
	base := cfg.BaseEjectionTime
	maxT := max(base, cfg.MaxEjectionTime)
	// Envoy lets the multiplier grow one step past max_ejection_time
	// (backoff × base < max + base), so a host ejected for the maximum
	// needs one more healthy interval to come down from it.
	if time.Duration(h.backoff)*base < maxT+base {
		h.backoff++
	}
	dur := min(time.Duration(h.backoff)*base, maxT)
	if j := cfg.MaxEjectionTimeJitter; j > 0 {
		dur += time.Duration(d.opts.Rand(int(j) + 1))
	}
	var count uint32 = 1
	if prev := h.ejection.Load(); prev != nil {
		count = prev.Count + 1
	}
	h.ejection.Store(&Ejection{Reason: r, Count: count, At: now, Until: now.Add(dur)})
	h.ejected.Store(true)
	d.ejected++
	d.opts.Log.Info("host ejected",
		zap.String("cluster", d.opts.Cluster), zap.String("host", h.Address), zap.Stringer("reason", r),
		zap.Uint32("ejection_count", count), zap.Duration("duration", dur))
	if d.opts.OnEvent != nil {
		d.opts.OnEvent(Event{Host: h, Reason: r, Ejected: true, Count: count, For: dur})
	}
	return true
}

// Sweep is the interval timer's work (Envoy's onIntervalTimer): return
// hosts whose ejection time elapsed, decrement the multiplier of hosts that
// stayed in service, then judge the interval's success rates.
func (d *Detector) Sweep() {
	now := d.opts.Clock.Now()
	changed := false
	d.mu.Lock()
	cfg := d.cfg.Load()
	stats := make([]rate, 0, len(d.hosts))
	for _, h := range d.hosts {
		b := h.bucket.Swap(0)
		switch {
		case !h.ejected.Load():
			if h.backoff > 0 {
				h.backoff--
			}
		case now.Before(h.ejection.Load().Until):
			continue // still ejected: not judged
		default:
			d.uneject(h, now)
			changed = true
		}
		// A host returned just now is judged too, on what it served
		// while ejected (panic mode), as Envoy does.
		if total := b & math.MaxUint32; total > 0 {
			stats = append(stats, rate{h: h, success: 100 * float64(b>>32) / float64(total), volume: total})
		}
	}
	changed = d.judgeRates(cfg, stats, now) || changed
	d.mu.Unlock()
	if changed && d.opts.OnChange != nil {
		d.opts.OnChange()
	}
}

func (d *Detector) uneject(h *Host, now time.Time) {
	e := h.ejection.Load()
	h.ejected.Store(false)
	d.ejected--
	// Envoy resets the consecutive counters so a host close to a
	// threshold is not ejected again after a few errors.
	h.resetCounters()
	h.detected.Store(0)
	d.opts.Log.Info("host returned to service",
		zap.String("cluster", d.opts.Cluster), zap.String("host", h.Address), zap.Stringer("reason", e.Reason),
		zap.Uint32("ejection_count", e.Count), zap.Duration("duration", now.Sub(e.At)))
	if d.opts.OnEvent != nil {
		d.opts.OnEvent(Event{Host: h, Reason: e.Reason, Count: e.Count, For: now.Sub(e.At)})
	}
}

type rate struct {
	h       *Host
	success float64 // percent
	volume  uint64
}

// judgeRates is Envoy's processSuccessRateEjections over the interval
// that just ended: success-rate ejection when at least
// success_rate_minimum_hosts hosts had success_rate_request_volume
// requests (eject below mean − stdev_factor/1000 × stdev), and
// failure-percentage ejection when at least
// failure_percentage_minimum_hosts hosts had
// failure_percentage_request_volume requests (eject at or above the
// threshold). Ejected hosts are not judged.
func (d *Detector) judgeRates(cfg *config.OutlierDetection, stats []rate, now time.Time) bool {
	n := uint32(len(d.hosts))
	if n < cfg.SuccessRateMinimumHosts && n < cfg.FailurePercentageMinimumHosts {
		return false
	}
	changed := false
	var sr []rate
	var sum float64
	for _, s := range stats {
		if s.volume >= uint64(cfg.SuccessRateRequestVolume) {
			sr = append(sr, s)
			sum += s.success
		}
	}
	if len(sr) > 0 && uint32(len(sr)) >= cfg.SuccessRateMinimumHosts {
		mean := sum / float64(len(sr))
		var variance float64
		for _, s := range sr {
			variance += (s.success - mean) * (s.success - mean)
		}
		stdev := math.Sqrt(variance / float64(len(sr)))
		threshold := mean - float64(cfg.SuccessRateStdevFactor)/1000*stdev
		for _, s := range sr {
			if s.success < threshold {
				changed = d.eject(cfg, s.h, SuccessRate, now) || changed
			}
		}
	}
	var fp []rate
	for _, s := range stats {
		if s.volume >= uint64(cfg.FailurePercentageRequestVolume) {
			fp = append(fp, s)
		}
	}
	if len(fp) > 0 && uint32(len(fp)) >= cfg.FailurePercentageMinimumHosts {
		for _, s := range fp {
			if 100-s.success >= float64(cfg.FailurePercentageThreshold) {
				changed = d.eject(cfg, s.h, FailurePercentage, now) || changed
			}
		}
	}
	return changed
}
