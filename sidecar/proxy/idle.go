package proxy

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// errStreamIdle is the guard's cause when a stream saw no activity for its
// idle timeout (Envoy's route idle_timeout, else the connection manager's
// stream_idle_timeout; response flag SI).
var errStreamIdle = errors.New("stream idle timeout")

// errPerTryIdle is the cancel cause when one attempt saw no upstream
// activity for the retry policy's per_try_idle_timeout (response flag UT).
var errPerTryIdle = errors.New("per-try idle timeout")

// idleWatch cancels an attempt's context when the response did not move
// for d (per_try_idle_timeout; the stream idle timeout is the guard's).
// Activity is one atomic store; the timer re-arms itself for the remaining
// time instead of being reset per chunk.
type idleWatch struct {
	ctx    context.Context // canceled with cause when idle
	d      time.Duration
	last   atomic.Int64 // unix nanos of the last activity
	timer  *time.Timer
	cancel context.CancelCauseFunc
	cause  error
}

func startWatch(ctx context.Context, d time.Duration, cause error) (context.Context, *idleWatch) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &idleWatch{ctx: ctx, d: d, cancel: cancel, cause: cause}
	w.touch()
	w.timer = time.AfterFunc(d, w.fire)
	return ctx, w
}

func (w *idleWatch) touch() {
	if w != nil {
		w.last.Store(time.Now().UnixNano())
	}
}

func (w *idleWatch) fire() {
	if rest := w.d - time.Since(time.Unix(0, w.last.Load())); rest > 0 {
		w.timer.Reset(rest)
		return
	}
	w.cancel(w.cause)
}

func (w *idleWatch) stop() {
	if w != nil {
		w.timer.Stop()
		w.cancel(context.Canceled)
	}
}

// tryIdledOut: the attempt's per_try_idle_timeout fired.
func tryIdledOut(ctx context.Context) bool { return context.Cause(ctx) == errPerTryIdle }
