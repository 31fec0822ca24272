package h1server

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

type bodyMode uint8

const (
	bodyFixed bodyMode = iota + 1
	bodyChunked
)

// body is a request body read off its connection. One per request with a
// body (a Read after the request ended fails instead of reading the next
// request's bytes). Read and Close exclude each other, as net/http's.
type body struct {
	c       *conn
	mu      sync.Mutex
	mode    bodyMode
	left    int64 // fixed: bytes left; chunked: bytes left in the chunk
	inData  bool  // chunked: inside a chunk's data
	eof     bool
	closed  bool
	err     error
	expect  bool        // send 100 Continue before the first read
	trailer http.Header // the request's Trailer map (declared keys)
}

var errMalformedChunk = errors.New("h1server: malformed chunked encoding")

func (b *body) Read(p []byte) (int, error) {
	b.lock()
	defer b.unlock()
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.err != nil:
		return 0, b.err
	case b.eof:
		return 0, io.EOF
	case len(p) == 0:
		return 0, nil
	}
	if b.expect {
		b.expect = false
		if err := b.c.writeContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	var n int
	var err error
	if b.mode == bodyFixed {
		n, err = b.readFixed(p)
	} else {
		n, err = b.readChunked(p)
	}
	if err == io.EOF {
		b.eof = true
		b.c.bodyEnded()
	} else if err != nil {
		b.err = err
		b.c.readFailed()
	}
	return n, err
}

func (b *body) readFixed(p []byte) (int, error) {
	n, err := h1wire.ReadData(b.c.br, p, &b.left)
	if b.left == 0 {
		return n, io.EOF // with the last bytes: no extra Read needed
	}
	return n, h1wire.Unexpected(err)
}

func (b *body) readChunked(p []byte) (int, error) {
	br := b.c.br
	for !b.inData {
		done, err := b.nextChunk()
		if err != nil {
			return 0, err
		}
		if done {
			return 0, io.EOF
		}
	}
	n, err := h1wire.ReadData(br, p, &b.left)
	if err != nil {
		return n, h1wire.Unexpected(err)
	}
	if b.left == 0 {
		b.inData = false
		if err := b.chunkEnd(); err != nil {
			return n, err
		}
		// The last chunk already here without trailers: EOF with the data.
		if br.Buffered() >= 5 {
			if end, _ := br.Peek(5); string(end) == "0\r\n\r\n" {
				br.Discard(5)
				return n, io.EOF
			}
		}
	}
	return n, nil
}

// chunkEnd reads the CRLF after a chunk's data.
func (b *body) chunkEnd() error {
	br := b.c.br
	if br.Buffered() < 2 {
		if _, err := br.Peek(2); err != nil {
			return h1wire.Unexpected(err)
		}
	}
	// CRLF exactly, as net/http: a bare LF here is how smuggling
	// attempts disagree with other parsers.
	if end, _ := br.Peek(2); string(end) != "\r\n" {
		return errMalformedChunk
	}
	br.Discard(2)
	return nil
}

// nextChunk reads a chunk-size line; at the last chunk it reads the
// trailers and reports done.
func (b *body) nextChunk() (done bool, err error) {
	limit := 4096
	line, err := b.c.readLine(&limit)
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return false, errMalformedChunk
		}
		return false, h1wire.Unexpected(err)
	}
	size, ok := h1wire.ParseChunkSize(line)
	if !ok {
		return false, errMalformedChunk
	}
	if size > 0 {
		b.inData, b.left = true, size
		return false, nil
	}
	return true, b.readTrailers()
}

// readTrailers reads the trailer fields after the last chunk into the
// request's Trailer map (made when the request declared none).
func (b *body) readTrailers() error {
	limit := b.c.s.maxHeaderBytes()
	for {
		line, err := b.c.readLine(&limit)
		if err != nil {
			if errors.Is(err, errTooLarge) {
				return errMalformedChunk
			}
			return h1wire.Unexpected(err)
		}
		if len(line) == 0 {
			return nil
		}
		name, v, err := h1wire.SplitField(line)
		if err != nil {
			return errMalformedChunk
		}
		k := http.CanonicalHeaderKey(string(name))
		switch k {
		case "Transfer-Encoding", "Trailer", "Content-Length", "Host":
			continue // never trailers (RFC 9110 section 6.5.1)
		}
		if b.trailer == nil {
			b.trailer = http.Header{}
			b.c.req.Trailer = b.trailer
		}
		b.trailer[k] = append(b.trailer[k], string(v))
	}
}

// Close ends the body for the handler: later reads fail. What was not
// read is dealt with when the request ends (finishUnread).
func (b *body) Close() error {
	b.lock()
	b.closed = true
	b.unlock()
	return nil
}

func (b *body) lock()   { b.mu.Lock() }
func (b *body) unlock() { b.mu.Unlock() }

// finishUnread is called when the handler returned: the body is closed
// for good. true when the connection can read the next request: the body
// was read to its end, or its rest is already buffered and is skipped. A
// read still blocked on another goroutine (a handler's leftover) is cut.
func (b *body) finishUnread() bool {
	if !b.mu.TryLock() {
		b.c.nc.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		b.c.broken = true
	}
	defer b.mu.Unlock()
	b.closed = true
	switch {
	case b.eof:
		return true
	case b.err != nil:
		return false
	case b.mode == bodyFixed && b.left <= int64(b.c.br.Buffered()) && !b.expectUnsent():
		b.c.br.Discard(int(b.left))
		b.left, b.eof = 0, true
		return true
	}
	return false
}

// expectUnsent: the client waits for 100 Continue before sending the body,
// which nobody read: the connection must close.
func (b *body) expectUnsent() bool { return b.expect }
