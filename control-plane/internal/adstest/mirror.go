package adstest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// Mirror is an ADS client that subscribes (wildcard) to the given types,
// ACKs every response and keeps the latest resources per type.
type Mirror struct {
	mu        sync.Mutex
	resources map[string]map[string]*anypb.Any // type → name → resource
	versions  map[string]string
	responses int
	changed   chan struct{} // capacity 1
	done      chan struct{}
	cancel    context.CancelFunc
	// check, when set, is run on the state after every response; its
	// errors are kept (Violations).
	check      func(View) error
	violations []string
}

// SetCheck runs check on the mirrored state after every response from now
// on, e.g. an invariant that must hold at every step of a change (a route
// never names a cluster the client does not have).
func (m *Mirror) SetCheck(check func(View) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.check = check
}

// Violations are the errors check returned so far, each with the response
// count at which it happened.
func (m *Mirror) Violations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.violations)
}

// NewMirror opens a stream (protocol "sotw" or "delta") as node and
// subscribes to types; it is closed at cleanup.
func NewMirror(t testing.TB, conn *grpc.ClientConn, node *core.Node, protocol string, types ...string) *Mirror {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mirror{resources: map[string]map[string]*anypb.Any{}, versions: map[string]string{},
		changed: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel}
	client := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn)
	switch protocol {
	case "sotw":
		st, err := client.StreamAggregatedResources(ctx)
		if err != nil {
			cancel()
			t.Fatalf("open SotW stream: %v", err)
		}
		for _, typ := range types {
			if err := st.Send(&discoverygrpc.DiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
				t.Fatalf("subscribe %s: %v", typ, err)
			}
		}
		go m.runSotW(st)
	case "delta":
		st, err := client.DeltaAggregatedResources(ctx)
		if err != nil {
			cancel()
			t.Fatalf("open Delta stream: %v", err)
		}
		for _, typ := range types {
			if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{Node: node, TypeUrl: typ}); err != nil {
				t.Fatalf("subscribe %s: %v", typ, err)
			}
		}
		go m.runDelta(st)
	default:
		cancel()
		t.Fatalf("protocol %q: want sotw or delta", protocol)
	}
	t.Cleanup(m.Close)
	return m
}

// Close ends the stream and waits for the reader.
func (m *Mirror) Close() {
	m.cancel()
	<-m.done
}

func (m *Mirror) runSotW(st discoverygrpc.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	defer close(m.done)
	for {
		r, err := st.Recv()
		if err != nil {
			return
		}
		got := make(map[string]*anypb.Any, len(r.GetResources()))
		for _, a := range r.GetResources() {
			got[nameOf(a)] = a
		}
		m.update(r.GetTypeUrl(), r.GetVersionInfo(), func(map[string]*anypb.Any) map[string]*anypb.Any { return got })
		if err := st.Send(&discoverygrpc.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			return
		}
	}
}

func (m *Mirror) runDelta(st discoverygrpc.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) {
	defer close(m.done)
	for {
		r, err := st.Recv()
		if err != nil {
			return
		}
		m.update(r.GetTypeUrl(), r.GetSystemVersionInfo(), func(old map[string]*anypb.Any) map[string]*anypb.Any {
			next := maps.Clone(old)
			if next == nil {
				next = map[string]*anypb.Any{}
			}
			for _, res := range r.GetResources() {
				next[res.GetName()] = res.GetResource()
			}
			for _, name := range r.GetRemovedResources() {
				delete(next, name)
			}
			return next
		})
		if err := st.Send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()}); err != nil {
			return
		}
	}
}

func (m *Mirror) update(typ, version string, f func(map[string]*anypb.Any) map[string]*anypb.Any) {
	m.mu.Lock()
	m.resources[typ] = f(m.resources[typ])
	m.versions[typ] = version
	m.responses++
	if m.check != nil {
		if err := m.check(m.viewLocked()); err != nil {
			m.violations = append(m.violations, fmt.Sprintf("after response %d (%s): %v", m.responses, typ, err))
		}
	}
	m.mu.Unlock()
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// View is a consistent read of a Mirror's state.
type View struct {
	Resources map[string]map[string]*anypb.Any
	Versions  map[string]string
	Responses int
}

// Names lists the resource names of a type, unordered.
func (v View) Names(typ string) []string {
	out := make([]string, 0, len(v.Resources[typ]))
	for n := range v.Resources[typ] {
		out = append(out, n)
	}
	return out
}

// Decode unmarshals the named resource of a type into msg; false if absent.
func (v View) Decode(typ, name string, msg proto.Message) bool {
	a, ok := v.Resources[typ][name]
	if !ok {
		return false
	}
	return a.UnmarshalTo(msg) == nil
}

// View returns the current state.
func (m *Mirror) View() View {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.viewLocked()
}

func (m *Mirror) viewLocked() View {
	v := View{Resources: make(map[string]map[string]*anypb.Any, len(m.resources)), Versions: maps.Clone(m.versions), Responses: m.responses}
	for t, rs := range m.resources {
		v.Resources[t] = maps.Clone(rs)
	}
	return v
}

// WaitFor waits until cond holds for the state, or ctx is done.
func (m *Mirror) WaitFor(ctx context.Context, what string, cond func(View) bool) (View, error) {
	for {
		v := m.View()
		if cond(v) {
			return v, nil
		}
		select {
		case <-m.changed:
		case <-m.done:
			return v, fmt.Errorf("waiting for %s: stream ended", what)
		case <-ctx.Done():
			return v, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		}
	}
}

// nameOf reads the name of a resource in an Any (every xDS type we use has a
// "name" or "cluster_name" field).
func nameOf(a *anypb.Any) string {
	msg, err := a.UnmarshalNew()
	if err != nil {
		return ""
	}
	fields := msg.ProtoReflect().Descriptor().Fields()
	for _, fn := range []string{"name", "cluster_name"} {
		if fd := fields.ByName(protoName(fn)); fd != nil {
			return msg.ProtoReflect().Get(fd).String()
		}
	}
	return ""
}

func protoName(s string) protoreflect.Name { return protoreflect.Name(s) }
