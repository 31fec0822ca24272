package proxy

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// errRouteTimeout is a guard's cause when the route timeout expired
// (504 UT); its Err is then context.DeadlineExceeded.
var errRouteTimeout = errors.New("route timeout")

// watchParentAfter is how long a request runs before its guard watches the
// downstream going away (the request's context): registering with it costs
// a few allocations that most requests, over sooner, need not pay. A client
// gone is seen this much later at most; reads and writes on its connection
// fail at once anyway.
const watchParentAfter = 20 * time.Millisecond

// guard is a request's timeouts and cancellation in one timer, and the
// context its upstream attempts run with. It replaces a context and a
// timer per timeout: the stream idle timeout (route idle_timeout, else the
// connection manager's stream_idle_timeout; activity is one atomic store),
// the connection manager's request_timeout (until disarmed) and the route
// timeout (from when the request was received) are deadlines; one
// time.AfterFunc fires at the earliest and re-arms for the next. Ending,
// it closes Done (made on first use), runs the abort function an upstream
// attempt registered (cluster.Abortable) and the functions registered by
// contexts derived from it (AfterFunc). Guards are pooled with their
// timer; a late timer callback only re-checks absolute deadlines.
type guard struct {
	last  atomic.Int64 // unix nanos of the last activity
	timer *time.Timer

	mu     sync.Mutex
	gen    uint64 // per request; a pooled guard's stale callbacks check it
	live   bool
	parent context.Context
	idle   time.Duration
	// Deadlines in unix nanos, 0 when unset.
	reqAt, routeAt, watchAt int64
	armedAt                 int64 // when the timer is set to fire; 0: not set
	parentStop              func() bool
	done                    chan struct{}
	err, cause              error
	abort                   func()
	afters                  []afterEntry
	nextID                  uint64
}

type afterEntry struct {
	id uint64
	f  func()
}

var guardPool = sync.Pool{New: func() any {
	g := &guard{}
	g.timer = time.AfterFunc(time.Hour, g.fire)
	g.timer.Stop()
	return g
}}

// newGuard starts a request's guard. start is when the request began
// (request_timeout counts from it).
func newGuard(parent context.Context, start time.Time, idle, requestTimeout time.Duration) *guard {
	g := guardPool.Get().(*guard)
	now := time.Now().UnixNano()
	g.last.Store(now)
	g.mu.Lock()
	g.gen++
	g.live, g.parent, g.idle = true, parent, idle
	g.reqAt, g.routeAt, g.watchAt, g.armedAt = 0, 0, now+int64(watchParentAfter), 0
	if requestTimeout > 0 {
		g.reqAt = start.UnixNano() + int64(requestTimeout)
	}
	g.rearmLocked(now)
	g.mu.Unlock()
	return g
}

// release ends the guard with its request and pools it. Nothing may use
// it afterwards.
func (g *guard) release() {
	g.mu.Lock()
	g.live = false
	stop := g.parentStop
	g.parentStop, g.parent, g.done, g.err, g.cause, g.abort = nil, nil, nil, nil, nil, nil
	clear(g.afters)
	g.afters = g.afters[:0]
	g.armedAt = 0
	g.timer.Stop()
	g.mu.Unlock()
	if stop != nil {
		stop()
	}
	guardPool.Put(g)
}

// touch records activity (stream idle timeout). Safe on nil.
func (g *guard) touch() {
	if g != nil {
		g.last.Store(time.Now().UnixNano())
	}
}

// startRoute arms the route timeout d from now.
func (g *guard) startRoute(d time.Duration) {
	g.mu.Lock()
	now := time.Now().UnixNano()
	g.routeAt = now + int64(d)
	g.rearmLocked(now)
	g.mu.Unlock()
}

// endRoute disarms the route timeout (an upgraded connection outlives
// it); the idle timeout goes on.
func (g *guard) endRoute() {
	g.mu.Lock()
	g.routeAt = 0
	g.mu.Unlock()
}

// disarmRequest stops request_timeout: the whole request is in, or the
// response started. Safe on nil and from any goroutine.
func (g *guard) disarmRequest() {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.reqAt = 0
	g.mu.Unlock()
}

// rearmLocked sets the timer to the earliest deadline still pending.
func (g *guard) rearmLocked(now int64) {
	next := g.watchAt
	for _, at := range [...]int64{g.reqAt, g.routeAt, g.idleAt()} {
		if at != 0 && (next == 0 || at < next) {
			next = at
		}
	}
	if next == 0 || g.armedAt != 0 && g.armedAt <= next {
		return // none, or the timer fires earlier and re-arms then
	}
	g.armedAt = next
	g.timer.Reset(time.Duration(max(next-now, 0)))
}

func (g *guard) idleAt() int64 {
	if g.idle <= 0 {
		return 0
	}
	return g.last.Load() + int64(g.idle)
}

// fire is the timer's callback: end the request at a deadline passed, else
// watch the parent when due and re-arm.
func (g *guard) fire() {
	g.mu.Lock()
	if !g.live || g.err != nil {
		g.mu.Unlock()
		return
	}
	now := time.Now().UnixNano()
	g.armedAt = 0
	var cause error
	first := int64(0)
	for _, d := range [...]struct {
		at    int64
		cause error
	}{{g.reqAt, errRequestTimeout}, {g.idleAt(), errStreamIdle}, {g.routeAt, errRouteTimeout}} {
		if d.at != 0 && d.at <= now && (cause == nil || d.at < first) {
			cause, first = d.cause, d.at
		}
	}
	if cause == nil {
		if g.watchAt != 0 && g.watchAt <= now {
			g.watchAt = 0
			gen := g.gen
			parent := g.parent
			g.mu.Unlock()
			// Outside the lock: AfterFunc runs f at once when parent has
			// already ended.
			stop := context.AfterFunc(parent, func() { g.cancel(gen, nil) })
			g.mu.Lock()
			if g.gen == gen && g.live {
				g.parentStop = stop
			} else {
				stop()
			}
		}
		if g.live && g.err == nil {
			g.rearmLocked(now)
		}
		g.mu.Unlock()
		return
	}
	gen := g.gen
	g.mu.Unlock()
	g.cancel(gen, cause)
}

// cancel ends the guard of request gen with cause (nil: the parent ended).
func (g *guard) cancel(gen uint64, cause error) {
	g.mu.Lock()
	if g.gen != gen || !g.live || g.err != nil {
		g.mu.Unlock()
		return
	}
	switch cause {
	case nil:
		g.err, g.cause = g.parent.Err(), context.Cause(g.parent)
	case errRouteTimeout:
		g.err, g.cause = context.DeadlineExceeded, cause
	default:
		g.err, g.cause = context.Canceled, cause
	}
	if g.done != nil {
		close(g.done)
	}
	abort := g.abort
	g.abort = nil
	afters := g.afters
	g.afters = nil // the slice is handed to this goroutine
	g.mu.Unlock()
	if abort != nil {
		abort()
	}
	for _, a := range afters {
		a.f()
	}
}

// Cause is why the guard ended: errStreamIdle, errRequestTimeout,
// errRouteTimeout, or the parent's cause (the downstream went away); nil
// while it runs.
func (g *guard) Cause() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cause
}

// context.Context

func (g *guard) Deadline() (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.routeAt == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, g.routeAt), true
}

func (g *guard) Done() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done == nil {
		g.done = make(chan struct{})
		if g.err != nil {
			close(g.done)
		}
	}
	return g.done
}

func (g *guard) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

func (g *guard) Value(key any) any {
	g.mu.Lock()
	p := g.parent
	g.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Value(key)
}

// AfterFunc registers f to run when the guard ends (context.AfterFunc and
// contexts derived from the guard use it instead of a goroutine). The
// returned stop unregisters it; false when f ran or is running.
func (g *guard) AfterFunc(f func()) func() bool {
	g.mu.Lock()
	if g.err != nil {
		g.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	g.nextID++
	id, gen := g.nextID, g.gen
	g.afters = append(g.afters, afterEntry{id: id, f: f})
	g.mu.Unlock()
	return func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.gen != gen {
			return false
		}
		for i, a := range g.afters {
			if a.id == id {
				g.afters = append(g.afters[:i], g.afters[i+1:]...)
				return true
			}
		}
		return false
	}
}

// cluster.Abortable

func (g *guard) SetAbort(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err != nil {
		return false
	}
	g.abort = f
	return true
}

func (g *guard) ClearAbort() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.abort == nil {
		return false // ran (or never set)
	}
	g.abort = nil
	return true
}
