package h1server

import (
	"bufio"
	"context"
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.x with Handler and hands h2c prior-knowledge
// connections to H2C. The fields are read when Serve starts: set them
// before.
type Server struct {
	// Handler answers every HTTP/1.x request.
	Handler http.Handler
	// H2C serves connections that open with the HTTP/2 preface ("PRI *
	// HTTP/2.0"); it needs Protocols with UnencryptedHTTP2 set. Nil: such
	// connections are answered 505 and closed. Its ConnState should be
	// nil: ConnState below already counts those connections.
	H2C *http.Server
	// MaxHeaderBytes bounds the request line and header fields (431
	// beyond); 0 means net/http's default of 1 MiB.
	MaxHeaderBytes int
	// ReadHeaderTimeout bounds the time from a request's first byte to the
	// end of its header block; 0 means no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a connection may wait for its next request;
	// 0 means no limit.
	IdleTimeout time.Duration
	// ConnState is told of each connection: StateNew when accepted, then
	// StateHijacked or StateClosed (h2c ones included). Optional.
	ConnState func(net.Conn, http.ConnState)
	// ErrorLog receives handler panics and accept errors; nil: the log
	// package's standard logger.
	ErrorLog *log.Logger

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*conn]struct{}
	closing  atomic.Bool // Shutdown or Close called
	h2ln     *connListener
	h2done   chan struct{}
	connsWG  sync.WaitGroup
	serveWG  sync.WaitGroup
	shutdown chan struct{} // closed by Shutdown/Close
}

// ErrServerClosed is what Serve returns after Shutdown or Close.
var ErrServerClosed = http.ErrServerClosed

// Serve accepts connections on ln until Shutdown or Close, each served by
// its own goroutine. It closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.ln = ln
	s.conns = make(map[*conn]struct{})
	s.shutdown = make(chan struct{})
	if s.H2C != nil {
		s.h2ln = newConnListener(ln.Addr())
		s.h2done = make(chan struct{})
		go func() {
			defer close(s.h2done)
			s.H2C.Serve(s.h2ln)
		}()
	}
	s.serveWG.Add(1)
	s.mu.Unlock()
	defer s.serveWG.Done()
	defer ln.Close()

	var delay time.Duration // back-off on temporary accept errors, as net/http
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Anything else (EMFILE, ECONNABORTED…) may pass: back off
			// and retry, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.logf("h1server: accept error: %v; retrying in %v", err, delay)
			select {
			case <-time.After(delay):
			case <-s.shutdown:
			}
			continue
		}
		delay = 0
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return ErrServerClosed
		}
		go c.serve()
	}
}

func (s *Server) newConn(nc net.Conn) *conn {
	c := &conn{s: s, nc: nc}
	c.cr.c = c
	c.br = bufio.NewReaderSize(&c.cr, 4<<10)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return nil
	}
	s.conns[c] = struct{}{}
	s.connsWG.Add(1)
	s.mu.Unlock()
	if s.ConnState != nil {
		s.ConnState(nc, http.StateNew)
	}
	return c
}

// forget removes c from the tracked connections (it closed, was hijacked
// or handed to H2C) and reports st.
func (s *Server) forget(c *conn, st http.ConnState) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
	if s.ConnState != nil && st != http.StateActive {
		s.ConnState(c.nc, st)
	}
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// beginClose stops accepting and tells connections to finish.
func (s *Server) beginClose() {
	s.mu.Lock()
	first := !s.closing.Swap(true)
	ln := s.ln
	if first && s.shutdown != nil {
		close(s.shutdown)
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// Shutdown stops accepting, closes idle connections at once and busy ones
// once their response is written (HTTP/1.x; responses written from now on
// say Connection: close), lets H2C send GOAWAY and drain, and returns when
// every connection is gone or ctx ends (then ctx's error; Close cuts what
// is left).
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginClose()
	s.closeIdle()
	s.mu.Lock()
	h2done := s.h2done
	s.mu.Unlock()
	h2err := make(chan error, 1)
	if h2done != nil {
		go func() { h2err <- s.H2C.Shutdown(ctx) }()
	} else {
		h2err <- nil
	}
	done := make(chan struct{})
	go func() {
		s.connsWG.Wait()
		s.serveWG.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := <-h2err; err != nil {
		return err
	}
	if h2done != nil {
		<-h2done
	}
	return nil
}

// Close stops accepting and closes every connection now; it waits for
// their goroutines (not for hijacked connections, which are the
// handler's).
func (s *Server) Close() error {
	s.beginClose()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	h2done := s.h2done
	s.mu.Unlock()
	if h2done != nil {
		s.H2C.Close()
		<-h2done
	}
	s.connsWG.Wait()
	s.serveWG.Wait()
	return nil
}

// closeIdle closes the connections waiting for a request.
func (s *Server) closeIdle() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosing) {
			c.nc.Close()
		}
	}
}

// connListener is the net.Listener H2C serves: connections handed over
// by the HTTP/1 side.
type connListener struct {
	addr   net.Addr
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }

// hand gives c to the listener's server; false when it is closed.
func (l *connListener) hand(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// replayConn is a connection whose first bytes were already read: Read
// returns them first. onClose runs once, at the first Close.
type replayConn struct {
	net.Conn
	mu      sync.Mutex
	pending []byte
	once    sync.Once
	onClose func()
}

func (c *replayConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		c.mu.Unlock()
		return n, nil
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *replayConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.onClose)
	return err
}
