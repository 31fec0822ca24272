package accesslog

import (
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/seed-a778acb4/consulate/internal/logging"
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
	// line is log's core when it takes hand-encoded lines (the binaries'
	// JSON loggers, package internal/logging): Log then appends the line
	// itself, the same bytes zap would write, at a fraction of the cost.
	// Nil for any other core (console format, tests' observers): Log goes
	// through zap's fields.
	line *logging.LineCore
	name string
}

// New returns a Logger writing to log at info level, without the caller
// annotation (a runtime.Callers per line, and always this package).
func New(log *zap.Logger, opts Options) *Logger {
	l := &Logger{log: log.Named("access").WithOptions(zap.WithCaller(false)), opts: opts}
	if c, ok := l.log.Core().(*logging.LineCore); ok && c.CanAppend() {
		l.line, l.name = c, l.log.Name()
	}
	return l
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
	if l.line != nil {
		l.appendLog(e)
		return
	}
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

// appendLog writes e's line by hand: the fields of Log, in its order,
// encoded as zap's JSON encoder would encode them.
func (l *Logger) appendLog(e *Entry) {
	if !l.line.Enabled(zapcore.InfoLevel) {
		return
	}
	bp := linePool.Get().(*[]byte)
	b := l.line.AppendHead((*bp)[:0], zapcore.InfoLevel, time.Now(), l.name, "access")
	b = append(b, `,"start_time":"`...)
	b = e.Start.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","method":`...)
	b = logging.AppendJSONString(b, e.Method)
	b = append(b, `,"authority":`...)
	b = logging.AppendJSONString(b, e.Authority)
	b = append(b, `,"path":`...)
	b = logging.AppendJSONString(b, e.Path)
	b = append(b, `,"protocol":`...)
	b = logging.AppendJSONString(b, e.Protocol)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"response_flags":`...)
	flags := e.Flags
	if flags == "" {
		flags = FlagNone
	}
	b = logging.AppendJSONString(b, flags)
	b = append(b, `,"duration_ms":`...)
	b = appendFloat(b, float64(e.Duration.Microseconds())/1000)
	b = append(b, `,"upstream_cluster":`...)
	b = logging.AppendJSONString(b, e.UpstreamCluster)
	b = append(b, `,"upstream_host":`...)
	b = logging.AppendJSONString(b, e.UpstreamHost)
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(e.Attempts), 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, e.BytesReceived, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = append(b, `,"request_id":`...)
	b = logging.AppendJSONString(b, e.RequestID)
	b = append(b, `,"listener":`...)
	b = logging.AppendJSONString(b, e.Listener)
	b = append(b, `,"downstream_remote_address":`...)
	b = logging.AppendJSONString(b, e.Downstream)
	_ = l.line.WriteLine(b) // as zap's Write: a failed write loses the line
	if cap(b) <= maxPooledLine {
		*bp = b
		linePool.Put(bp)
	}
}

// appendFloat is zap's JSON encoding of a float64: strconv's shortest
// 'f' form, NaN and infinities as strings.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

// linePool holds line buffers; one grown by a huge path is dropped rather
// than kept.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledLine = 16 << 10
