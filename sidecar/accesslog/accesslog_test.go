package accesslog

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/internal/logging"
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

var timeField = regexp.MustCompile(`^\{"level":"info","time":"[^"]*"`)

// logBoth writes e through the hand-written encoder and through zap's
// (the same logger with its core hidden), and returns both lines with the
// entry time blanked.
func logBoth(t testing.TB, level string, e *Entry) (hand, zapped string) {
	t.Helper()
	var out bytes.Buffer
	log, err := logging.NewWriter(level, "json", &out)
	if err != nil {
		t.Fatal(err)
	}
	log = log.With(zap.String("proxy_id", "web-1-sidecar-proxy"))
	l := New(log, Options{})
	if level == "info" && l.line == nil {
		t.Fatal("the JSON logger's lines go through zap's fields")
	}
	l.Log(e)
	hand = out.String()
	out.Reset()
	hidden := New(log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return struct{ zapcore.Core }{c} })), Options{})
	if hidden.line != nil {
		t.Fatal("a wrapped core takes hand-written lines")
	}
	hidden.Log(e)
	zapped = out.String()
	blank := func(s string) string { return timeField.ReplaceAllString(s, `{"level":"info","time":""`) }
	return blank(hand), blank(zapped)
}

func TestLineIsZaps(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		e    Entry
	}{
		{name: "full", e: Entry{Start: start, Method: "GET", Authority: "api:8080", Path: "/p?q=1&r=<x>", Protocol: "HTTP/1.1",
			Status: 503, Flags: UpstreamConnectionFailure + "," + "URX", Duration: 1500 * time.Microsecond, UpstreamCluster: "c",
			UpstreamHost: "10.0.0.1:1", Attempts: 3, BytesReceived: 1 << 40, BytesSent: -1, RequestID: "id", Listener: "l", Downstream: "[::1]:5000"}},
		{name: "empty", e: Entry{}},
		{name: "tcp", e: Entry{Start: start.UTC(), Protocol: "tcp", Duration: 2 * time.Hour, Attempts: 1, Listener: "public_listener"}},
		{name: "escapes", e: Entry{Start: start, Method: "G\"ET", Path: "/a\\b\n\r\t\x00\x1f\x7f", Authority: "h\xff\xfe",
			RequestID: "é🙂\u2028", Duration: 999 * time.Nanosecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hand, zapped := logBoth(t, "info", &tc.e)
			if hand != zapped {
				t.Errorf("hand-written line\n%s differs from zap's\n%s", hand, zapped)
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(hand), &m); err != nil {
				t.Fatalf("%s: %v", hand, err)
			}
			if m["logger"] != "access" || m["msg"] != "access" || m["proxy_id"] != "web-1-sidecar-proxy" || len(m) != 21 {
				t.Errorf("line %s: want logger and msg access, the proxy id and 21 keys", hand)
			}
		})
	}
}

func TestLineLevel(t *testing.T) {
	hand, zapped := logBoth(t, "warn", &Entry{Method: "GET"})
	if hand != "" || zapped != "" {
		t.Errorf("at level warn the access log wrote %q and %q", hand, zapped)
	}
}

func FuzzLine(f *testing.F) {
	f.Add("GET", "/p?q", "h\xff", int64(1500), 200)
	f.Add("\"\\\n", "\u2028<>&", "", int64(-1), -7)
	f.Fuzz(func(t *testing.T, method, path, host string, micros int64, status int) {
		e := &Entry{Start: time.Unix(0, micros*1000), Method: method, Path: path, Authority: host, UpstreamHost: path + host,
			Status: status, Duration: time.Duration(micros) * time.Microsecond, BytesSent: micros}
		hand, zapped := logBoth(t, "info", e)
		if hand != zapped {
			t.Errorf("hand-written line\n%s differs from zap's\n%s", hand, zapped)
		}
	})
}
