package proxy

import (
	"context"
	"errors"
	"time"
)

// errRequestTimeout is the cancel cause when the connection manager's
// request_timeout expired before the whole request was received.
var errRequestTimeout = errors.New("request timeout")

// requestTimer is Envoy's HttpConnectionManager.request_timeout: armed
// when the request starts, disarmed once the whole request was received
// (the body's end, or no body) or the response started. It exists only
// when the timeout is configured (Envoy's default is off).
type requestTimer struct {
	timer  *time.Timer
	cancel context.CancelCauseFunc
}

// startRequestTimer cancels the returned context with errRequestTimeout d
// after start unless disarmed first.
func startRequestTimer(ctx context.Context, start time.Time, d time.Duration) (context.Context, *requestTimer) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := &requestTimer{cancel: cancel}
	t.timer = time.AfterFunc(max(d-time.Since(start), 0), func() { cancel(errRequestTimeout) })
	return ctx, t
}

// disarm stops the timer; the context stays valid. Safe on nil and from
// any goroutine (the transport reads request bodies on its own).
func (t *requestTimer) disarm() {
	if t != nil {
		t.timer.Stop()
	}
}

// stop ends the timer and its context when the exchange is over.
func (t *requestTimer) stop() {
	if t != nil {
		t.timer.Stop()
		t.cancel(context.Canceled)
	}
}

func requestTimedOut(ctx context.Context) bool { return context.Cause(ctx) == errRequestTimeout }
