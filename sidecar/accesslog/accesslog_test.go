package accesslog

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLogFields(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	l := New(zap.New(core), Options{})
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if !l.Enabled() {
		t.Fatal("not enabled")
	}
	l.Log(&Entry{Start: start, Method: "GET", Authority: "a", Path: "/p?q", Protocol: "HTTP/1.1", Status: 503,
		Flags: UpstreamConnectionFailure, Duration: 1500 * time.Microsecond, UpstreamCluster: "c", UpstreamHost: "h:1",
		Attempts: 1, BytesReceived: 3, BytesSent: 4, RequestID: "id", Listener: "l", Downstream: "10.0.0.1:5000"})
	got := logs.AllUntimed()[0].ContextMap()
	want := map[string]any{
		"start_time": start, "method": "GET", "authority": "a", "path": "/p?q", "protocol": "HTTP/1.1",
		"status": int64(503), "response_flags": "UF", "duration_ms": 1.5, "upstream_cluster": "c",
		"upstream_host": "h:1", "attempts": int64(1), "bytes_received": int64(3), "bytes_sent": int64(4),
		"request_id": "id", "listener": "l", "downstream_remote_address": "10.0.0.1:5000",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	// JSON encodes (no unsupported field types).
	if _, err := json.Marshal(got); err != nil {
		t.Fatal(err)
	}
}

func TestSamplingAndOff(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		min, max int
	}{
		{name: "all", opts: Options{}, min: 1000, max: 1000},
		{name: "off", opts: Options{Off: true}, min: 0, max: 0},
		{name: "ten percent", opts: Options{SampleRate: 0.1}, min: 50, max: 160},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New(zap.NewNop(), tc.opts)
			n := 0
			for range 1000 {
				if l.Enabled() {
					n++
				}
			}
			if n < tc.min || n > tc.max {
				t.Errorf("%d of 1000 logged, want [%d, %d]", n, tc.min, tc.max)
			}
		})
	}
}
