package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/outlier"
)

// Metrics are read from the live state at scrape time, so the data path
// only touches its own atomics (no label lookup per request). Names follow
// Envoy's cluster statistics (upstream_rq_pending_overflow,
// ejections_enforced_*, remaining_cx, ...).
var (
	descOverflow = prometheus.NewDesc("consulate_sidecar_cluster_circuit_breaker_overflow_total",
		"Circuit breaker overflows by cluster and breaker: requests refused (503 UO), retries not made, and queued connection attempts given up at max_connections.",
		[]string{"cluster", "breaker"}, nil)
	descOpen = prometheus.NewDesc("consulate_sidecar_cluster_circuit_breaker_in_use",
		"Current use of each circuit breaker (connections, pending requests, requests, retries).",
		[]string{"cluster", "breaker"}, nil)
	descRemaining = prometheus.NewDesc("consulate_sidecar_cluster_circuit_breaker_remaining",
		"Remaining capacity of each circuit breaker before it overflows.",
		[]string{"cluster", "breaker"}, nil)
	descEjections = prometheus.NewDesc("consulate_sidecar_cluster_outlier_ejections_total",
		"Hosts ejected by outlier detection (enforced), by cluster and reason.",
		[]string{"cluster", "reason"}, nil)
	descEjected = prometheus.NewDesc("consulate_sidecar_cluster_outlier_ejections_active",
		"Hosts ejected by outlier detection now.",
		[]string{"cluster"}, nil)
	descEjectionOverflow = prometheus.NewDesc("consulate_sidecar_cluster_outlier_ejections_overflow_total",
		"Ejections refused because max_ejection_percent was reached.",
		[]string{"cluster"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Set) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOverflow, descOpen, descRemaining, descEjections, descEjected, descEjectionOverflow} {
		ch <- d
	}
}

// Collect implements prometheus.Collector; safe from any goroutine.
func (s *Set) Collect(ch chan<- prometheus.Metric) {
	for name, c := range *s.cur.Load() {
		st := c.state
		cb := st.breakers()
		use := [4]int64{st.conns.Load(), st.pending.Load(), st.active.Load(), st.retries.Load()}
		limits := [4]int64{
			cb.Limit(config.ThresholdConnections),
			cb.Limit(config.ThresholdPendingRequests),
			cb.Limit(config.ThresholdRequests),
			st.retryLimit(),
		}
		for b := BreakerConnections; b <= BreakerRetries; b++ {
			ch <- prometheus.MustNewConstMetric(descOverflow, prometheus.CounterValue, float64(st.overflow[b].Load()), name, b.String())
			ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(use[b]), name, b.String())
			ch <- prometheus.MustNewConstMetric(descRemaining, prometheus.GaugeValue, float64(max(0, limits[b]-use[b])), name, b.String())
		}
		if c.cfg.OutlierDetection == nil {
			continue
		}
		for _, r := range outlier.Reasons {
			ch <- prometheus.MustNewConstMetric(descEjections, prometheus.CounterValue, float64(st.ejections[r].Load()), name, r.String())
		}
		var ejected int
		for _, h := range st.uniqueHosts(c) {
			if h.od.Ejected() {
				ejected++
			}
		}
		ch <- prometheus.MustNewConstMetric(descEjected, prometheus.GaugeValue, float64(ejected), name)
		var overflow uint64
		if d := st.detectorOf(); d != nil {
			overflow = d.Overflows()
		}
		ch <- prometheus.MustNewConstMetric(descEjectionOverflow, prometheus.CounterValue, float64(overflow), name)
	}
}

// uniqueHosts is c's hosts without duplicates (an address may appear in
// several endpoints).
func (st *state) uniqueHosts(c *Cluster) []*Host {
	seen := make(map[*Host]bool, len(c.hosts))
	out := make([]*Host, 0, len(c.hosts))
	for _, h := range c.hosts {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

func (st *state) detectorOf() *outlier.Detector {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.detector
}
