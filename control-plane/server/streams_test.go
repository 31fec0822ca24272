package server

import (
	"context"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStreamsClassifiesRequests(t *testing.T) {
	const typ = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	tests := []struct {
		name     string
		delta    bool
		requests func(s *streams) // after a response with nonce "1" version "v1"
		wantMsgs []string         // info and warn messages after the response's "push"
		wantType TypeStatus
	}{
		{
			name: "sotw ACK",
			requests: func(s *streams) {
				_ = s.OnStreamRequest(1, &discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: "v1", ResponseNonce: "1"})
			},
			wantMsgs: []string{"ACK"},
			wantType: TypeStatus{LastSentVersion: "v1", LastACKedVersion: "v1"},
		},
		{
			name: "sotw repeated ACK nonce is a subscription change, not a second ACK",
			requests: func(s *streams) {
				_ = s.OnStreamRequest(1, &discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: "v1", ResponseNonce: "1"})
				_ = s.OnStreamRequest(1, &discovery.DiscoveryRequest{TypeUrl: typ, VersionInfo: "v1", ResponseNonce: "1", ResourceNames: []string{"a"}})
			},
			wantMsgs: []string{"ACK"},
			wantType: TypeStatus{LastSentVersion: "v1", LastACKedVersion: "v1"},
		},
		{
			name:  "delta NACK",
			delta: true,
			requests: func(s *streams) {
				_ = s.OnStreamDeltaRequest(1, &discovery.DeltaDiscoveryRequest{TypeUrl: typ, ResponseNonce: "1",
					ErrorDetail: &rpcstatus.Status{Message: "no"}})
			},
			wantMsgs: []string{"NACK"},
			wantType: TypeStatus{LastSentVersion: "v1", LastNACK: &NACK{Version: "v1", Nonce: "1", Error: "no", Resources: []string{"c1"}}},
		},
		{
			name: "sotw NACK of a forgotten nonce",
			requests: func(s *streams) {
				_ = s.OnStreamRequest(1, &discovery.DiscoveryRequest{TypeUrl: typ, ResponseNonce: "99",
					ErrorDetail: &rpcstatus.Status{Message: "no"}})
			},
			wantMsgs: []string{"NACK"},
			wantType: TypeStatus{LastSentVersion: "v1", LastNACK: &NACK{Nonce: "99", Error: "no"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.InfoLevel)
			s := newStreams(zap.New(core), newMetrics())
			ctx := context.Background()
			if tt.delta {
				_ = s.OnDeltaStreamOpen(ctx, 1, "")
				if err := s.OnStreamDeltaRequest(1, &discovery.DeltaDiscoveryRequest{Node: sidecarNode("n"), TypeUrl: typ}); err != nil {
					t.Fatal(err)
				}
				s.OnStreamDeltaResponse(1, nil, &discovery.DeltaDiscoveryResponse{TypeUrl: typ, SystemVersionInfo: "v1", Nonce: "1",
					Resources: []*discovery.Resource{{Name: "c1"}}})
			} else {
				_ = s.OnStreamOpen(ctx, 1, "")
				if err := s.OnStreamRequest(1, &discovery.DiscoveryRequest{Node: sidecarNode("n"), TypeUrl: typ}); err != nil {
					t.Fatal(err)
				}
				s.OnStreamResponse(ctx, 1, nil, &discovery.DiscoveryResponse{TypeUrl: typ, VersionInfo: "v1", Nonce: "1"})
			}
			tt.requests(s)
			var msgs []string
			for _, e := range logs.All() {
				if e.Message != "stream opened" && e.Message != "push" {
					msgs = append(msgs, e.Message)
				}
			}
			if diff := cmp.Diff(tt.wantMsgs, msgs); diff != "" {
				t.Errorf("log messages (-want +got):\n%s", diff)
			}
			st := s.Status()
			if len(st) != 1 {
				t.Fatalf("status: %+v", st)
			}
			got := st[0].Types[typ]
			if got.LastNACK != nil {
				got.LastNACK.At = tt.wantType.LastNACK.At
			}
			if diff := cmp.Diff(tt.wantType, got, cmpIgnoreTimes()); diff != "" {
				t.Errorf("type status (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamsRequireNodeID(t *testing.T) {
	s := newStreams(zap.NewNop(), newMetrics())
	_ = s.OnStreamOpen(context.Background(), 1, "")
	err := s.OnStreamRequest(1, &discovery.DiscoveryRequest{TypeUrl: "t"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("first request without node id: %v, want InvalidArgument", err)
	}
}

// TestStreamsKeepKindAcrossReconnect: a node that reconnects before the
// builder forgets it is served its cached snapshot at once, so /status must
// show what the builder knew of it, not an unclassified node; once the
// builder forgets the node (whileGone), a new stream starts afresh.
func TestStreamsKeepKindAcrossReconnect(t *testing.T) {
	const typ = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	s := newStreams(zap.NewNop(), newMetrics())
	ctx := context.Background()
	connect := func(id int64) {
		t.Helper()
		_ = s.OnDeltaStreamOpen(ctx, id, "")
		if err := s.OnStreamDeltaRequest(id, &discovery.DeltaDiscoveryRequest{Node: sidecarNode("n"), TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	kindOf := func() Kind {
		t.Helper()
		st := s.Status()
		if len(st) != 1 {
			t.Fatalf("status = %+v, want one stream", st)
		}
		return st[0].Kind
	}

	connect(1)
	s.setKind("n", KindSidecar)
	s.setFailure("n", &TranslationError{Error: "broken"})
	s.OnDeltaStreamClosed(1, nil)
	connect(2)
	if got := kindOf(); got != KindSidecar {
		t.Errorf("kind after a reconnect = %q, want %q", got, KindSidecar)
	}
	if st := s.Status(); st[0].TranslationError == nil || st[0].TranslationError.Error != "broken" {
		t.Errorf("translation error after a reconnect = %+v, want the recorded one", st[0].TranslationError)
	}

	s.OnDeltaStreamClosed(2, nil)
	if !s.whileGone("n", func() {}) {
		t.Fatal("whileGone did not run for a node with no stream")
	}
	connect(3)
	if got := kindOf(); got != "" {
		t.Errorf("kind after the builder forgot the node = %q, want none", got)
	}
	if len(s.gone) != 0 {
		t.Errorf("gone keeps %d nodes with a stream open", len(s.gone))
	}
}
