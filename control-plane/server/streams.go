package server

import (
	"context"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"go.uber.org/zap"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
)

// maxPending bounds the responses per stream and type remembered while
// waiting for their ACK/NACK. A client answers every response, so only a
// misbehaving one reaches it; the oldest are then forgotten.
const maxPending = 8

// streamKey identifies a stream: go-control-plane numbers SotW and Delta
// streams with separate counters.
type streamKey struct {
	protocol Protocol
	id       int64
}

// streams implements go-control-plane's server.Callbacks: it tracks open
// streams and their nodes, logs and counts pushes, ACKs and NACKs, and
// records the per-proxy status. See doc.go for the locking rules.
type streams struct {
	log     *zap.Logger
	metrics *metrics.Metrics
	now     func() time.Time
	// entries names the config entries behind a node's resources (for
	// NACKs); it only reads the immutable current model.
	entries func(nodeID string, names []string) []string

	mu    sync.Mutex
	byKey map[streamKey]*streamState
	nodes map[string]*nodeEntry
	// gone keeps what the builder recorded of a node whose last stream
	// closed, until the builder forgets the node (whileGone): a node that
	// reconnects first is served its cached snapshot at once, and /status
	// must not show it unclassified meanwhile.
	gone    map[string]*nodeEntry
	changed map[string]struct{} // node IDs connected or gone since the builder last looked
	kick    chan struct{}       // capacity 1: "changed is not empty"
	// answered is signalled (capacity 1) after each ACK or NACK, for the
	// builder's make-before-break steps (stage.go).
	answered chan struct{}
}

type nodeEntry struct {
	node    *core.Node
	streams []streamKey // open streams that named this node
	kind    Kind
	failure *TranslationError // the builder's copy; see setFailure
}

type streamState struct {
	key    streamKey
	peer   string
	opened time.Time
	nodeID string // empty until the first request naming a node
	types  map[string]*typeState
}

type typeState struct {
	lastSent   string
	lastSentAt time.Time
	lastACKed  string
	lastACKAt  time.Time
	lastNACK   *NACK
	pending    map[string]pendingResponse // by nonce
}

// pendingResponse is a sent response not yet ACKed or NACKed.
type pendingResponse struct {
	version string
	names   []string     // delta: the names sent
	sotw    []*anypb.Any // SotW: the resources, decoded for their names only on a NACK
}

func newStreams(log *zap.Logger, m *metrics.Metrics) *streams {
	return &streams{
		log:      log,
		metrics:  m,
		now:      time.Now,
		byKey:    map[streamKey]*streamState{},
		nodes:    map[string]*nodeEntry{},
		gone:     map[string]*nodeEntry{},
		changed:  map[string]struct{}{},
		kick:     make(chan struct{}, 1),
		answered: make(chan struct{}, 1),
	}
}

// OnStreamOpen implements sotw.Callbacks.
func (s *streams) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	s.open(ctx, streamKey{ProtocolSotW, id})
	return nil
}

// OnDeltaStreamOpen implements delta.Callbacks.
func (s *streams) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	s.open(ctx, streamKey{ProtocolDelta, id})
	return nil
}

// OnStreamClosed implements sotw.Callbacks.
func (s *streams) OnStreamClosed(id int64, _ *core.Node) { s.close(streamKey{ProtocolSotW, id}) }

// OnDeltaStreamClosed implements delta.Callbacks.
func (s *streams) OnDeltaStreamClosed(id int64, _ *core.Node) { s.close(streamKey{ProtocolDelta, id}) }

// OnStreamRequest implements sotw.Callbacks.
func (s *streams) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	return s.request(streamKey{ProtocolSotW, id}, request{
		node:    req.GetNode(),
		typeURL: req.GetTypeUrl(),
		nonce:   req.GetResponseNonce(),
		version: req.GetVersionInfo(),
		errMsg:  req.GetErrorDetail(),
		names:   req.GetResourceNames(),
	})
}

// OnStreamDeltaRequest implements delta.Callbacks.
func (s *streams) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	return s.request(streamKey{ProtocolDelta, id}, request{
		node:    req.GetNode(),
		typeURL: req.GetTypeUrl(),
		nonce:   req.GetResponseNonce(),
		errMsg:  req.GetErrorDetail(),
		names:   req.GetResourceNamesSubscribe(),
	})
}

// OnStreamResponse implements sotw.Callbacks.
func (s *streams) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	s.response(streamKey{ProtocolSotW, id}, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce(),
		len(resp.GetResources()), 0, pendingResponse{version: resp.GetVersionInfo(), sotw: resp.GetResources()})
}

// OnStreamDeltaResponse implements delta.Callbacks.
func (s *streams) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	names := make([]string, 0, len(resp.GetResources()))
	for _, r := range resp.GetResources() {
		names = append(names, r.GetName())
	}
	s.response(streamKey{ProtocolDelta, id}, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce(),
		len(resp.GetResources()), len(resp.GetRemovedResources()), pendingResponse{version: resp.GetSystemVersionInfo(), names: names})
}

// OnFetchRequest implements rest.Callbacks. REST is not served.
func (s *streams) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "REST xDS is not served; use ADS")
}

// OnFetchResponse implements rest.Callbacks.
func (s *streams) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

func (s *streams) open(ctx context.Context, key streamKey) {
	p := ""
	if pr, ok := peer.FromContext(ctx); ok && pr.Addr != nil {
		p = pr.Addr.String()
	}
	s.mu.Lock()
	s.byKey[key] = &streamState{key: key, peer: p, opened: s.now(), types: map[string]*typeState{}}
	s.mu.Unlock()
	s.metrics.Streams.WithLabelValues(string(key.protocol)).Inc()
}

func (s *streams) close(key streamKey) {
	s.mu.Lock()
	st, ok := s.byKey[key]
	delete(s.byKey, key)
	kick := false
	if ok && st.nodeID != "" {
		if ne := s.nodes[st.nodeID]; ne != nil {
			ne.streams = slices.DeleteFunc(ne.streams, func(k streamKey) bool { return k == key })
			if len(ne.streams) == 0 {
				delete(s.nodes, st.nodeID)
				s.gone[st.nodeID] = ne
				s.changed[st.nodeID] = struct{}{}
				s.metrics.ConnectedProxies.Dec()
				kick = true
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	s.metrics.Streams.WithLabelValues(string(key.protocol)).Dec()
	s.log.Info("stream closed", zap.String("node_id", st.nodeID), zap.String("peer", st.peer),
		zap.String("protocol", string(key.protocol)), zap.Int64("stream_id", key.id),
		zap.Duration("duration", s.now().Sub(st.opened)))
	if kick {
		s.signal()
	}
}

type request struct {
	node    *core.Node
	typeURL string
	nonce   string
	version string            // SotW only: the last version the client accepted
	errMsg  *rpcstatus.Status // set on a NACK
	names   []string
}

func (s *streams) request(key streamKey, r request) error {
	log, kick, err := s.record(key, r)
	if err != nil {
		return err
	}
	// Log outside the lock: stderr I/O must not hold up other streams,
	// /status or the builder.
	log()
	if kick {
		s.signal()
	}
	if r.nonce != "" {
		select {
		case s.answered <- struct{}{}:
		default:
		}
	}
	return nil
}

// record updates the stream's state for a request and returns the log
// line to write, and whether the builder must look at the node set.
func (s *streams) record(key streamKey, r request) (log func(), kick bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.byKey[key]
	if !ok {
		return nil, false, status.Error(codes.Internal, "request on an unknown stream")
	}
	proto := zap.String("protocol", string(key.protocol))
	var opened func()
	if st.nodeID == "" {
		id := r.node.GetId()
		if id == "" {
			return nil, false, status.Error(codes.InvalidArgument, "the first request on a stream must carry node.id")
		}
		st.nodeID = id
		ne := s.nodes[id]
		if ne == nil {
			ne = &nodeEntry{node: r.node}
			if old := s.gone[id]; old != nil {
				ne.kind, ne.failure = old.kind, old.failure
				delete(s.gone, id)
			}
			s.nodes[id] = ne
			s.changed[id] = struct{}{}
			s.metrics.ConnectedProxies.Inc()
			kick = true
		}
		ne.streams = append(ne.streams, key)
		peer, ua := st.peer, r.node.GetUserAgentName()
		opened = func() {
			s.log.Info("stream opened", zap.String("node_id", id), zap.String("peer", peer), proto,
				zap.Int64("stream_id", key.id), zap.String("user_agent", ua))
		}
	}
	nodeID := zap.String("node_id", st.nodeID)
	ts := st.typ(r.typeURL)
	p, known := ts.pending[r.nonce]
	switch {
	case r.errMsg != nil:
		delete(ts.pending, r.nonce)
		version := p.version
		if !known {
			version = "" // a NACK of a response we no longer remember
		}
		n := &NACK{Version: version, Nonce: r.nonce, Error: r.errMsg.GetMessage(), Resources: p.resourceNames(), At: s.now()}
		if s.entries != nil {
			n.ConfigEntries = s.entries(st.nodeID, n.Resources)
		}
		ts.lastNACK = n
		s.metrics.NACKs.WithLabelValues(shortType(r.typeURL)).Inc()
		accepted := ts.lastACKed
		log = func() {
			s.log.Warn("NACK", nodeID, proto, zap.String("type", r.typeURL), zap.String("version", version),
				zap.String("nonce", r.nonce), zap.Strings("resources", n.Resources), zap.String("error_detail", n.Error),
				zap.Strings("config_entries", n.ConfigEntries), zap.String("accepted_version", accepted))
		}
	case r.nonce != "" && known:
		delete(ts.pending, r.nonce)
		ts.lastACKed, ts.lastACKAt = p.version, s.now()
		s.metrics.ACKs.WithLabelValues(shortType(r.typeURL)).Inc()
		log = func() {
			s.log.Info("ACK", nodeID, proto, zap.String("type", r.typeURL), zap.String("version", p.version),
				zap.String("nonce", r.nonce))
		}
	default:
		log = func() {
			s.log.Debug("request", nodeID, proto, zap.String("type", r.typeURL), zap.String("version", r.version),
				zap.String("nonce", r.nonce), zap.Strings("resources", r.names))
		}
	}
	if opened != nil {
		next := log
		log = func() { opened(); next() }
	}
	return log, kick, nil
}

func (s *streams) response(key streamKey, typeURL, version, nonce string, count, removed int, p pendingResponse) {
	s.mu.Lock()
	st, ok := s.byKey[key]
	nodeID := ""
	if ok {
		nodeID = st.nodeID
		ts := st.typ(typeURL)
		ts.lastSent, ts.lastSentAt = version, s.now()
		if len(ts.pending) >= maxPending {
			clear(ts.pending)
		}
		ts.pending[nonce] = p
	}
	s.mu.Unlock()
	s.metrics.Pushes.WithLabelValues(shortType(typeURL)).Inc()
	s.log.Info("push", zap.String("node_id", nodeID), zap.String("protocol", string(key.protocol)),
		zap.String("type", typeURL), zap.String("version", version), zap.String("nonce", nonce),
		zap.Int("resources", count), zap.Int("removed", removed))
}

func (st *streamState) typ(typeURL string) *typeState {
	ts := st.types[typeURL]
	if ts == nil {
		ts = &typeState{pending: map[string]pendingResponse{}}
		st.types[typeURL] = ts
	}
	return ts
}

// resourceNames are the names of the resources in the response.
func (p pendingResponse) resourceNames() []string {
	if p.names != nil || p.sotw == nil {
		return p.names
	}
	names := make([]string, 0, len(p.sotw))
	for _, a := range p.sotw {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if r, ok := m.(types.Resource); ok {
			names = append(names, cache.GetResourceName(r))
		}
	}
	return names
}

func (s *streams) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// answeredAll reports whether every stream of the node has answered (ACKed
// or NACKed) the given version of each type it subscribes to. A node with
// no stream has nothing to wait for.
func (s *streams) answeredAll(nodeID string, want map[string]string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ne := s.nodes[nodeID]
	if ne == nil {
		return true
	}
	for _, key := range ne.streams {
		st := s.byKey[key]
		if st == nil {
			continue
		}
		for typ, version := range want {
			ts := st.types[typ]
			if ts == nil || ts.lastACKed == version || (ts.lastNACK != nil && ts.lastNACK.Version == version) {
				continue
			}
			return false
		}
	}
	return true
}
