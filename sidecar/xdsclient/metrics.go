package xdsclient

import "github.com/prometheus/client_golang/prometheus"

// metrics are the client's Prometheus series.
type metrics struct {
	connected  prometheus.Gauge
	ready      prometheus.Gauge
	updates    *prometheus.CounterVec // accepted responses by type
	rejections *prometheus.CounterVec // NACKed responses by type
	applied    prometheus.Counter     // complete configs applied
	streams    *prometheus.CounterVec // stream ends by reason
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consulate_sidecar_xds_connected",
			Help: "1 while the ADS stream to the control plane is open, else 0.",
		}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consulate_sidecar_xds_ready",
			Help: "1 once a complete configuration has been applied.",
		}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_sidecar_xds_updates_total",
			Help: "xDS responses accepted (ACKed), by resource type.",
		}, []string{"type"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_sidecar_xds_rejections_total",
			Help: "xDS responses rejected (NACKed), by resource type.",
		}, []string{"type"}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consulate_sidecar_xds_configs_applied_total",
			Help: "Complete, consistent configurations applied.",
		}),
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_sidecar_xds_stream_ends_total",
			Help: "ADS streams that ended, by gRPC status code.",
		}, []string{"code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.connected, m.ready, m.updates, m.rejections, m.applied, m.streams} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
