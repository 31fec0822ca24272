package accesslog

import (
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Envoy response flags (%RESPONSE_FLAGS%) the data path sets.
const (
	FlagNone                  = "-"
	NoRouteFound              = "NR"
	NoClusterFound            = "NC"
	NoHealthyUpstream         = "UH"
	UpstreamConnectionFailure = "UF"
	UpstreamOverflow          = "UO"
	UpstreamRequestTimeout    = "UT"
	UpstreamConnTermination   = "UC"
	UpstreamRemoteReset       = "UR"
	UpstreamProtocolError     = "UPE"
	DownstreamConnTermination = "DC"
	StreamIdleTimeout         = "SI"
)

// Options configure a Logger.
type Options struct {
	// Off disables the access log.
	Off bool
	// SampleRate in (0, 1) logs that fraction of requests; 0 or >= 1 logs
	// every request.
	SampleRate float64
}

// Logger writes access-log lines.
type Logger struct {
	log  *zap.Logger
	opts Options
}

// New returns a Logger writing to log at info level, without the caller
// annotation (a runtime.Callers per line, and always this package).
func New(log *zap.Logger, opts Options) *Logger {
	return &Logger{log: log.Named("access").WithOptions(zap.WithCaller(false)), opts: opts}
}

// Entry is one request's record. Field names follow the list.
type Entry struct {
	Start           time.Time
	Method          string
	Authority       string
	Path            string
	Protocol        string
	Status          int
	Flags           string
	Duration        time.Duration
	UpstreamCluster string
	UpstreamHost    string
	Attempts        int
	BytesReceived   int64
	BytesSent       int64
	RequestID       string
	Listener        string
	// Downstream is the client's address (Envoy's
	// %DOWNSTREAM_REMOTE_ADDRESS%).
	Downstream string
}

// Enabled reports whether the next entry would be written (sampling
// included); callers may skip building the entry.
func (l *Logger) Enabled() bool {
	if l == nil || l.opts.Off {
		return false
	}
	if r := l.opts.SampleRate; r > 0 && r < 1 && rand.Float64() >= r {
		return false
	}
	return true
}

// Log writes e. Call it only after Enabled returned true.
func (l *Logger) Log(e *Entry) {
	ce := l.log.Check(zapcore.InfoLevel, "access")
	if ce == nil {
		return
	}
	flags := e.Flags
	if flags == "" {
		flags = FlagNone
	}
	fp := fieldPool.Get().(*[16]zap.Field)
	*fp = [16]zap.Field{
		zap.Time("start_time", e.Start),
		zap.String("method", e.Method),
		zap.String("authority", e.Authority),
		zap.String("path", e.Path),
		zap.String("protocol", e.Protocol),
		zap.Int("status", e.Status),
		zap.String("response_flags", flags),
		zap.Float64("duration_ms", float64(e.Duration.Microseconds())/1000),
		zap.String("upstream_cluster", e.UpstreamCluster),
		zap.String("upstream_host", e.UpstreamHost),
		zap.Int("attempts", e.Attempts),
		zap.Int64("bytes_received", e.BytesReceived),
		zap.Int64("bytes_sent", e.BytesSent),
		zap.String("request_id", e.RequestID),
		zap.String("listener", e.Listener),
		zap.String("downstream_remote_address", e.Downstream),
	}
	ce.Write(fp[:]...) // cores encode or copy the fields; none keeps the slice
	*fp = [16]zap.Field{}
	fieldPool.Put(fp)
}

// fieldPool holds the fields of a line: passed as a slice they would
// otherwise escape to the heap (1 KiB per request).
var fieldPool = sync.Pool{New: func() any { return new([16]zap.Field) }}
