package proxy

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the data path's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	active   *prometheus.GaugeVec
	retries  *prometheus.CounterVec
	retryEnd *prometheus.CounterVec

	clusters sync.Map // cluster name → *clusterMetrics
}

// NewMetrics registers the data path metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "consulate", Subsystem: "sidecar", Name: "upstream_requests_total",
			Help: "Requests handled, by upstream cluster and response status code.",
		}, []string{"cluster", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "consulate", Subsystem: "sidecar", Name: "request_duration_seconds",
			Help:    "Time from request start to the end of the response, by upstream cluster.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"cluster"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "consulate", Subsystem: "sidecar", Name: "downstream_connections_active",
			Help: "Open downstream connections, by listener.",
		}, []string{"listener"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "consulate", Subsystem: "sidecar", Name: "upstream_retries_total",
			Help: "Retry attempts sent (Envoy's upstream_rq_retry), by upstream cluster.",
		}, []string{"cluster"}),
		retryEnd: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "consulate", Subsystem: "sidecar", Name: "upstream_retry_outcomes_total",
			Help: "Requests that needed a retry, by upstream cluster and how retrying ended: success (upstream_rq_retry_success), " +
				"limit_exceeded (URX, upstream_rq_retry_limit_exceeded) or overflow (UO, upstream_rq_retry_overflow).",
		}, []string{"cluster", "outcome"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.active, m.retries, m.retryEnd} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register sidecar metrics: %w", err)
		}
	}
	return m, nil
}

// clusterMetrics caches the children of one cluster so that the hot path
// does no label hashing and takes no lock after the first request of each
// status code.
type clusterMetrics struct {
	latency prometheus.Observer
	// codes are the request counters of the status codes seen so far: a
	// handful per cluster, copied on write, scanned without a lock (a
	// 600-slot array of them cost 4.7 KiB per cluster, 47 MiB for a
	// sidecar whose 10,000 clusters all served).
	codes  atomic.Pointer[[]codeCounter]
	mu     sync.Mutex // serializes adding to codes
	parent *Metrics
	name   string
}

type codeCounter struct {
	code    int
	counter prometheus.Counter
}

func (m *Metrics) cluster(name string) *clusterMetrics {
	if v, ok := m.clusters.Load(name); ok {
		return v.(*clusterMetrics)
	}
	cm := &clusterMetrics{latency: m.latency.WithLabelValues(name), parent: m, name: name}
	v, _ := m.clusters.LoadOrStore(name, cm)
	return v.(*clusterMetrics)
}

func (cm *clusterMetrics) count(code int) {
	if c := cm.codeCounter(code); c != nil {
		c.Inc()
		return
	}
	cm.mu.Lock()
	defer cm.mu.Unlock()
	if c := cm.codeCounter(code); c != nil { // added meanwhile
		c.Inc()
		return
	}
	c := cm.parent.requests.WithLabelValues(cm.name, strconv.Itoa(code))
	var next []codeCounter
	if p := cm.codes.Load(); p != nil {
		next = append(next, *p...)
	}
	next = append(next, codeCounter{code: code, counter: c})
	cm.codes.Store(&next)
	c.Inc()
}

// codeCounter is code's counter, nil if no request had that code yet.
func (cm *clusterMetrics) codeCounter(code int) prometheus.Counter {
	if p := cm.codes.Load(); p != nil {
		for _, cc := range *p {
			if cc.code == code {
				return cc.counter
			}
		}
	}
	return nil
}

// countRetries counts n retries and how retrying ended. Only requests
// that needed a retry get here, so the label lookups stay off the common
// path.
func (cm *clusterMetrics) countRetries(n int, end retryEnd) {
	m := cm.parent
	if n > 0 {
		m.retries.WithLabelValues(cm.name).Add(float64(n))
	}
	switch end {
	case retrySuccess:
		m.retryEnd.WithLabelValues(cm.name, "success").Inc()
	case retryExhausted:
		m.retryEnd.WithLabelValues(cm.name, "limit_exceeded").Inc()
	case retryOverflow:
		m.retryEnd.WithLabelValues(cm.name, "overflow").Inc()
	}
}

// Connections returns the active-connections gauge of a listener.
func (m *Metrics) Connections(listener string) prometheus.Gauge {
	return m.active.WithLabelValues(listener)
}
