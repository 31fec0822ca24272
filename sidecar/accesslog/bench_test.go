package accesslog

import (
	"io"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/seed-a778acb4/consulate/internal/logging"
)

// BenchmarkLog is one access-log line through the logger the sidecar
// uses (JSON, the proxy id as context), written to io.Discard: hand is
// the hand-written encoder, zap the same line through zap's fields (the
// logger's core hidden behind a wrapper), as before issue 8's change.
func BenchmarkLog(b *testing.B) {
	log, err := logging.NewWriter("info", "json", io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	log = log.With(zap.String("proxy_id", "web-1-sidecar-proxy"))
	b.Run("hand", func(b *testing.B) { benchLog(b, New(log, Options{})) })
	hidden := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return struct{ zapcore.Core }{c} }))
	b.Run("zap", func(b *testing.B) { benchLog(b, New(hidden, Options{})) })
}

func benchLog(b *testing.B, l *Logger) {
	e := &Entry{Start: time.Now(), Method: "GET", Authority: "api.internal:8080", Path: "/v1/items?limit=10",
		Protocol: "HTTP/1.1", Status: 200, Duration: 1234 * time.Microsecond, UpstreamCluster: "api.default.dc1.internal",
		UpstreamHost: "10.0.0.12:21000", Attempts: 1, BytesReceived: 0, BytesSent: 1024,
		RequestID: "0d9b1a3c-6f1e-4c53-9a53-6c0f1d2e3f40", Listener: "upstream:api", Downstream: "127.0.0.1:53412"}
	b.ReportAllocs()
	for b.Loop() {
		if l.Enabled() {
			l.Log(e)
		}
	}
}
