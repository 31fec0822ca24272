package server

import (
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
)

func zapNop() *zap.Logger { return zap.NewNop() }

func newMetrics() *metrics.Metrics { return metrics.New(prometheus.NewRegistry()) }

func zapString(k, v string) zapcore.Field { return zap.String(k, v) }

// value reads a counter's or gauge's current value.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// cmpIgnoreTimes ignores the time fields of status values.
func cmpIgnoreTimes() cmp.Option {
	return cmpopts.IgnoreFields(TypeStatus{}, "LastSentAt", "LastACKedAt")
}
