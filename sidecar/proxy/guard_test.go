package proxy

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func waitDone(t *testing.T, ctx context.Context, within time.Duration) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(within):
		t.Fatalf("not ended after %v", within)
	}
}

func TestGuard(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		g := newGuard(t.Context(), time.Now(), 80*time.Millisecond, 0)
		defer g.release()
		for range 6 { // active for 3× the idle timeout
			time.Sleep(40 * time.Millisecond)
			g.touch()
		}
		if g.Err() != nil {
			t.Fatalf("ended while active: %v", g.Cause())
		}
		waitDone(t, g, 3*time.Second)
		if g.Cause() != errStreamIdle || !errors.Is(g.Err(), context.Canceled) {
			t.Errorf("cause %v err %v, want the stream idle timeout", g.Cause(), g.Err())
		}
	})
	t.Run("request timeout, disarmed", func(t *testing.T) {
		g := newGuard(t.Context(), time.Now(), 0, 50*time.Millisecond)
		defer g.release()
		g.disarmRequest()
		time.Sleep(150 * time.Millisecond)
		if g.Err() != nil {
			t.Fatalf("disarmed request_timeout fired: %v", g.Cause())
		}
		g2 := newGuard(t.Context(), time.Now().Add(-40*time.Millisecond), 0, 50*time.Millisecond)
		defer g2.release()
		waitDone(t, g2, 3*time.Second)
		if g2.Cause() != errRequestTimeout {
			t.Errorf("cause %v, want the request timeout", g2.Cause())
		}
	})
	t.Run("route timeout ends what depends on it", func(t *testing.T) {
		g := newGuard(t.Context(), time.Now(), time.Minute, 0)
		defer g.release()
		child, cancel := context.WithTimeout(g, time.Hour)
		defer cancel()
		var ran, aborted atomic.Bool
		stop := context.AfterFunc(g, func() { ran.Store(true) })
		defer stop()
		if !g.SetAbort(func() { aborted.Store(true) }) {
			t.Fatal("SetAbort on a live guard failed")
		}
		if d, ok := g.Deadline(); ok {
			t.Fatalf("deadline %v before the route timeout started", d)
		}
		g.startRoute(50 * time.Millisecond)
		if _, ok := g.Deadline(); !ok {
			t.Error("no deadline once the route timeout started")
		}
		waitDone(t, child, 3*time.Second)
		if g.Cause() != errRouteTimeout || g.Err() != context.DeadlineExceeded || child.Err() != context.DeadlineExceeded {
			t.Errorf("cause %v err %v child %v", g.Cause(), g.Err(), child.Err())
		}
		deadline := time.Now().Add(3 * time.Second)
		for !ran.Load() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !ran.Load() || !aborted.Load() {
			t.Errorf("AfterFunc ran %v, abort ran %v", ran.Load(), aborted.Load())
		}
		if g.ClearAbort() || g.SetAbort(func() {}) {
			t.Error("ClearAbort/SetAbort after the end should report false")
		}
	})
	t.Run("downstream gone", func(t *testing.T) {
		parent, cancel := context.WithCancel(t.Context())
		g := newGuard(parent, time.Now(), time.Minute, 0)
		defer g.release()
		cancel()
		waitDone(t, g, watchParentAfter+3*time.Second)
		if g.Err() != context.Canceled || g.Cause() != context.Canceled {
			t.Errorf("err %v cause %v, want the parent's", g.Err(), g.Cause())
		}
	})
	t.Run("released guards are reused clean", func(t *testing.T) {
		for range 50 {
			g := newGuard(t.Context(), time.Now(), time.Millisecond, 0)
			time.Sleep(time.Duration(time.Now().UnixNano()%3) * time.Millisecond)
			stop := g.AfterFunc(func() {})
			g.release()
			stop() // late: must not touch the next request's registrations
			g2 := newGuard(t.Context(), time.Now(), time.Minute, 0)
			if g2.Err() != nil {
				t.Fatalf("fresh guard ended: %v", g2.Cause())
			}
			g2.release()
		}
	})
}
