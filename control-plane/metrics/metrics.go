// Package metrics holds the control plane's Prometheus collectors.
//
// Collectors are registered on the registry the caller passes (no global
// default registry), so two control planes in one test process do not
// collide. All methods are safe for concurrent use: the collectors are
// client_golang's, which are lock-free or internally synchronised.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the control plane's collectors.
type Metrics struct {
	// ConnectedProxies is the number of distinct xDS node IDs with at
	// least one open stream.
	ConnectedProxies prometheus.Gauge
	// Streams is the number of open ADS streams, by protocol (sotw|delta).
	Streams *prometheus.GaugeVec
	// Pushes counts responses sent, by resource type.
	Pushes *prometheus.CounterVec
	// ACKs counts acknowledged responses, by resource type.
	ACKs *prometheus.CounterVec
	// NACKs counts rejected responses, by resource type.
	NACKs *prometheus.CounterVec
	// PushDuration is the time to translate one proxy's configuration and
	// hand it to the cache.
	PushDuration prometheus.Histogram
	// RebuildDuration is the time of a rebuild for every connected proxy
	// after the mesh model changed.
	RebuildDuration prometheus.Histogram
	// SnapshotsSet counts snapshots handed to the cache; unchanged
	// configurations are skipped and counted in SnapshotsUnchanged.
	SnapshotsSet       prometheus.Counter
	SnapshotsUnchanged prometheus.Counter
	// StagedSteps counts the intermediate make-before-break snapshots set
	// (clusters before the routes that use them, routes before the
	// clusters they stop using), by how the step before ended: "answered"
	// (every stream ACKed or NACKed it) or "timeout".
	StagedSteps *prometheus.CounterVec
	// TranslateErrors counts failed translations (the proxy keeps its last
	// configuration).
	TranslateErrors prometheus.Counter
	// ConfigEntryErrors is the number of config entry fields Consul holds
	// that the mesh model could not decode (mesh.Config.Errors).
	ConfigEntryErrors prometheus.Gauge
	// FailingProxies is the number of connected proxies whose last
	// translation failed (they keep their last configuration).
	FailingProxies prometheus.Gauge
}

// New creates the collectors and registers them on reg. It panics if reg
// already holds collectors with the same names (a programming error).
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ConnectedProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consulate_cp_connected_proxies",
			Help: "Distinct xDS node IDs with at least one open ADS stream.",
		}),
		Streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "consulate_cp_streams",
			Help: "Open ADS streams by protocol (sotw or delta).",
		}, []string{"protocol"}),
		Pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_cp_pushes_total",
			Help: "xDS responses sent, by resource type.",
		}, []string{"type"}),
		ACKs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_cp_acks_total",
			Help: "xDS responses acknowledged by the client, by resource type.",
		}, []string{"type"}),
		NACKs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_cp_nacks_total",
			Help: "xDS responses rejected by the client, by resource type.",
		}, []string{"type"}),
		PushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "consulate_cp_push_duration_seconds",
			Help:    "Time to translate one proxy's configuration and set it in the cache.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10),
		}),
		RebuildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "consulate_cp_rebuild_duration_seconds",
			Help:    "Time to rebuild the configuration of every connected proxy after a mesh change.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		SnapshotsSet: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consulate_cp_snapshots_set_total",
			Help: "Proxy snapshots whose content changed and were set in the cache.",
		}),
		SnapshotsUnchanged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consulate_cp_snapshots_unchanged_total",
			Help: "Proxy snapshots rebuilt with unchanged versions and therefore not re-pushed.",
		}),
		StagedSteps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "consulate_cp_staged_steps_total",
			Help: "Make-before-break steps set after the step before was answered by the proxy (outcome=answered) or not in time (outcome=timeout).",
		}, []string{"outcome"}),
		TranslateErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "consulate_cp_translate_errors_total",
			Help: "Failed translations; the proxy keeps its last configuration.",
		}),
		ConfigEntryErrors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consulate_cp_config_entry_errors",
			Help: "Config entry fields in Consul that could not be applied (their entry keeps its last good version).",
		}),
		FailingProxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "consulate_cp_translation_failing_proxies",
			Help: "Connected proxies whose last translation failed and that keep their last configuration.",
		}),
	}
	reg.MustRegister(m.ConnectedProxies, m.Streams, m.Pushes, m.ACKs, m.NACKs,
		m.PushDuration, m.RebuildDuration, m.SnapshotsSet, m.SnapshotsUnchanged, m.StagedSteps, m.TranslateErrors,
		m.ConfigEntryErrors, m.FailingProxies)
	return m
}
