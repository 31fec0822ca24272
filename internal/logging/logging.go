// Package logging builds the one zap logger each binary passes down. There
// is no global logger: every component receives a *zap.Logger.
package logging

import (
	"fmt"
	"io"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stderr is shared by every logger of the process, so that a buffered
// logger's flush and other loggers' lines never interleave within a write.
var stderr = zapcore.Lock(os.Stderr)

// New returns a logger writing to stderr. format is "json" (default) or
// "console"; level is a zap level name (debug, info, warn, error).
func New(level, format string) (*zap.Logger, error) {
	core, err := newCore(level, format, stderr)
	if err != nil {
		return nil, err
	}
	return zap.New(core, zap.AddCaller()), nil
}

// NewWriter is New writing to w instead of stderr, without the caller
// annotation: for tests and benchmarks of what the binaries log.
func NewWriter(level, format string, w io.Writer) (*zap.Logger, error) {
	core, err := newCore(level, format, zapcore.AddSync(w))
	if err != nil {
		return nil, err
	}
	return zap.New(core), nil
}

// NewBuffered is New writing through a buffer of size bytes, flushed when
// full, every interval, and by stop (call it before exiting), and without
// the caller annotation: for high-volume lines such as the access log,
// where a write(2) and a runtime.Callers per line are most of the cost.
func NewBuffered(level, format string, size int, interval time.Duration) (log *zap.Logger, stop func() error, err error) {
	ws := &zapcore.BufferedWriteSyncer{WS: stderr, Size: size, FlushInterval: interval}
	core, err := newCore(level, format, ws)
	if err != nil {
		return nil, nil, err
	}
	return zap.New(core), ws.Stop, nil
}

func newCore(level, format string, ws zapcore.WriteSyncer) (zapcore.Core, error) {
	var lvl zapcore.Level
	if level == "" {
		level = "info"
	}
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "time"
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	encCfg.EncodeDuration = zapcore.MillisDurationEncoder
	switch format {
	case "", "json":
		// LineCore.AppendHead writes these keys, the lowercase level and
		// RFC 3339 times with nanoseconds as encCfg says.
		return newLineCore(encCfg, ws, lvl), nil
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalColorLevelEncoder
		return zapcore.NewCore(zapcore.NewConsoleEncoder(encCfg), ws, lvl), nil
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
}
