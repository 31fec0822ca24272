package xdsclient

import (
	"maps"
	"sync"
	"time"
)

// Rejection is the last NACK of one resource type.
type Rejection struct {
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Status is the client's view of its stream, for the admin endpoint.
type Status struct {
	Connected bool `json:"connected"`
	// Rejected holds, per resource type ("listener", ...), the last NACK
	// not yet followed by an ACK of that type.
	Rejected map[string]Rejection `json:"rejected,omitempty"`
	// Waiting lists referenced resources not received yet (warming).
	Waiting []string `json:"waiting,omitempty"`
}

// streamStatus is the mutable side of Status; only Run's goroutines write it.
type streamStatus struct {
	mu  sync.Mutex
	cur Status
}

func (s *streamStatus) set(fn func(*Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.cur)
}

func (s *streamStatus) get() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.cur
	out.Rejected = maps.Clone(s.cur.Rejected)
	out.Waiting = append([]string(nil), s.cur.Waiting...)
	return out
}

// Status returns a copy of the stream status.
func (c *Client) Status() Status { return c.status.get() }
