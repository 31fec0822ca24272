package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// defaultBufferLimit is Envoy's per_connection_buffer_limit_bytes default:
// the most of a request body kept for replay on a retry.
const defaultBufferLimit = 1 << 20

// replayPool holds request-body buffers for retries. Buffers that grew
// past maxPooledBuffer are left to the garbage collector.
var replayPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledBuffer = 2 << 20

// replayBuffer is a request body read whole so that each attempt can send
// it again. It goes back to the pool when the exchange and every attempt's
// reader released it: transports may close a request body from their own
// goroutine after RoundTrip returned (net/http's RoundTripper contract).
type replayBuffer struct {
	bp   *[]byte
	data []byte
	refs atomic.Int32
}

func (rb *replayBuffer) release() {
	if rb.refs.Add(-1) == 0 {
		if cap(rb.data) <= maxPooledBuffer {
			*rb.bp = rb.data[:0]
			replayPool.Put(rb.bp)
		}
		rb.data, rb.bp = nil, nil
	}
}

// reader returns a fresh reader of the body for one attempt.
func (rb *replayBuffer) reader() io.ReadCloser {
	rb.refs.Add(1)
	return &replayReader{rb: rb}
}

// replayReader reads a replayBuffer. Read and Close exclude each other so
// that no Read touches the buffer once Close released it (HTTP/2 closes a
// request body from another goroutine when a stream is reset).
type replayReader struct {
	mu     sync.Mutex
	rb     *replayBuffer
	off    int
	closed bool
}

func (r *replayReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, io.ErrClosedPipe
	}
	data := r.rb.data
	if r.off >= len(data) {
		return 0, io.EOF
	}
	n := copy(p, data[r.off:])
	r.off += n
	return n, nil
}

func (r *replayReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.rb.release()
	}
	return nil
}

// errBodyTooLarge says the body outgrew the buffer limit: it streams
// through and the request is not retried.
var errBodyTooLarge = errors.New("request body larger than the buffer limit")

// bufferBody reads the request body (through ex.body, which counts and
// touches the guard's idle timeout) into a pooled buffer of at most limit bytes.
// Within the limit it sets ex.replay. Above it, ex.stream is the part read
// so far followed by the rest of the body, and errBodyTooLarge is
// returned. A slow client cannot hold the proxy: when ctx ends (stream idle
// timeout, client gone) the read deadline is set to now.
func (ex *exchange) bufferBody(ctx context.Context, limit int) error {
	// When ctx ended the deadline stays: the answer is a local reply that
	// must not wait for the rest of the body (see abandonBody).
	defer ex.abortReadsWhenDone(ctx)()
	bp := replayPool.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		// Never read more than limit+1 bytes: one past the limit is
		// enough to know the body does not fit.
		end := min(cap(b), limit+1)
		n, err := ex.body.Read(b[len(b):end])
		b = b[:len(b)+n]
		if len(b) > limit {
			*bp = b[:0]
			ex.stream = &prefixedBody{bp: bp, prefix: b, rest: ex.body}
			return errBodyTooLarge
		}
		if err == io.EOF {
			rb := &replayBuffer{bp: bp, data: b}
			rb.refs.Store(1) // the exchange's reference, released in finish
			ex.replay = rb
			return nil
		}
		if err != nil {
			*bp = b[:0]
			replayPool.Put(bp)
			return err
		}
	}
}

// abortReadsWhenDone makes the client's request body fail its reads as
// soon as ctx ends (stream idle, request or route timeout, client gone):
// a transport writing the body upstream returns only once its read
// returns, and a stalled client would otherwise hold the request forever.
// Call the returned func before the handler returns; it waits for a
// running abort so that nothing touches the ResponseWriter afterwards.
func (ex *exchange) abortReadsWhenDone(ctx context.Context) (release func()) {
	rc := http.NewResponseController(ex.w)
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		rc.SetReadDeadline(time.Now())
	})
	return func() {
		if !stop() {
			<-done
		}
	}
}

// prefixedBody is a body whose first bytes were already read into a
// pooled buffer, returned to the pool on Close (Read and Close exclude
// each other, as in replayReader).
type prefixedBody struct {
	mu     sync.Mutex
	bp     *[]byte
	prefix []byte
	rest   io.ReadCloser
	closed bool
}

func (p *prefixedBody) Read(b []byte) (int, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		p.mu.Unlock()
		return n, nil
	}
	p.mu.Unlock()
	// The rest is the server's body, safe to Close during a Read.
	return p.rest.Read(b)
}

func (p *prefixedBody) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	if cap(*p.bp) <= maxPooledBuffer {
		replayPool.Put(p.bp)
	}
	p.bp, p.prefix = nil, nil
	return p.rest.Close()
}
