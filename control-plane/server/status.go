package server

import (
	"cmp"
	"slices"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// NACK is a response a client rejected.
type NACK struct {
	// Version is the rejected version ("" if the response was forgotten).
	Version string `json:"version"`
	Nonce   string `json:"nonce"`
	// Error is the client's error_detail message.
	Error string `json:"error"`
	// Resources are the names in the rejected response.
	Resources []string `json:"resources,omitempty"`
	// ConfigEntries are the Consul config entries that shape those
	// resources ("service-resolver/api"), where to look for the cause.
	ConfigEntries []string  `json:"config_entries,omitempty"`
	At            time.Time `json:"at"`
}

// TypeStatus is one resource type on one stream.
type TypeStatus struct {
	LastSentVersion  string    `json:"last_sent_version"`
	LastSentAt       time.Time `json:"last_sent_at,omitzero"`
	LastACKedVersion string    `json:"last_acked_version"`
	LastACKedAt      time.Time `json:"last_acked_at,omitzero"`
	LastNACK         *NACK     `json:"last_nack,omitempty"`
}

// ProxyStatus is one connected proxy (one open stream).
type ProxyStatus struct {
	NodeID      string    `json:"node_id"`
	Kind        Kind      `json:"kind"`
	Protocol    Protocol  `json:"protocol"`
	Peer        string    `json:"peer"`
	StreamID    int64     `json:"stream_id"`
	ConnectedAt time.Time `json:"connected_at"`
	// Types by type URL.
	Types map[string]TypeStatus `json:"types"`
	// TranslationError is why the proxy's last translation failed (it
	// keeps its last configuration); absent once a translation succeeds.
	TranslationError *TranslationError `json:"translation_error,omitempty"`
}

// Status lists every stream that has identified its node, sorted by node ID,
// protocol and stream ID.
func (s *streams) Status() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.byKey))
	for _, st := range s.byKey {
		if st.nodeID == "" {
			continue
		}
		ps := ProxyStatus{
			NodeID: st.nodeID, Protocol: st.key.protocol, Peer: st.peer, StreamID: st.key.id,
			ConnectedAt: st.opened, Types: make(map[string]TypeStatus, len(st.types)),
		}
		if ne := s.nodes[st.nodeID]; ne != nil {
			ps.Kind = ne.kind
			if ne.failure != nil {
				f := *ne.failure
				ps.TranslationError = &f
			}
		}
		for t, ts := range st.types {
			tstat := TypeStatus{
				LastSentVersion: ts.lastSent, LastSentAt: ts.lastSentAt,
				LastACKedVersion: ts.lastACKed, LastACKedAt: ts.lastACKAt,
			}
			if ts.lastNACK != nil {
				n := *ts.lastNACK
				n.Resources = slices.Clone(n.Resources)
				n.ConfigEntries = slices.Clone(n.ConfigEntries)
				tstat.LastNACK = &n
			}
			ps.Types[t] = tstat
		}
		out = append(out, ps)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.StreamID, b.StreamID))
	})
	return out
}

// takeChanged returns the node IDs that connected or went away since the
// last call.
func (s *streams) takeChanged() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(s.changed))
	for id := range s.changed {
		ids = append(ids, id)
	}
	clear(s.changed)
	return ids
}

// node returns the connected node with that ID.
func (s *streams) node(id string) (*core.Node, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ne, ok := s.nodes[id]
	if !ok {
		return nil, false
	}
	return ne.node, true
}

// setKind records what the builder decided a node is, for /status.
func (s *streams) setKind(id string, k Kind) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ne := s.nodes[id]; ne != nil {
		ne.kind = k
	}
}

// setFailure records (a copy of) why the node's last translation failed,
// nil once one succeeded, for /status.
func (s *streams) setFailure(id string, te *TranslationError) {
	var c *TranslationError
	if te != nil {
		v := *te
		c = &v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ne := s.nodes[id]; ne != nil {
		ne.failure = c
	}
}

// whileGone runs f, under the lock, if node id has no open stream, so that
// no stream of that node can open a watch while f (clearing the node's cache
// entry) runs. It reports whether f ran.
func (s *streams) whileGone(id string, f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.nodes[id]; ok {
		return false
	}
	f()
	delete(s.gone, id)
	return true
}

// nackedVersion is the version a State-of-the-World NACK with this nonce
// rejected, if one of the node's streams just recorded it.
func (s *streams) nackedVersion(nodeID, typeURL, nonce string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, st := range s.byKey {
		if key.protocol != ProtocolSotW || st.nodeID != nodeID {
			continue
		}
		if ts := st.types[typeURL]; ts != nil && ts.lastNACK != nil && ts.lastNACK.Nonce == nonce && ts.lastNACK.Version != "" {
			return ts.lastNACK.Version, true
		}
	}
	return "", false
}

// shortType is the last element of a type URL, for metric labels.
func shortType(typeURL string) string {
	if i := strings.LastIndexByte(typeURL, '.'); i >= 0 {
		return typeURL[i+1:]
	}
	return typeURL
}
