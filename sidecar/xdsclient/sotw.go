package xdsclient

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// sotwStream speaks State-of-the-World ADS: every request for a type
// carries the full name list, the last ACKed version and the last nonce.
type sotwStream struct {
	stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	types  map[string]*sotwType
}

type sotwType struct {
	acked string // last ACKed version_info
	nonce string // last response nonce
	names []string
}

func openSotW(ctx context.Context, conn *grpc.ClientConn, nodeID string) (*sotwStream, error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	return &sotwStream{stream: st, node: node(nodeID), types: make(map[string]*sotwType)}, nil
}

func (s *sotwStream) typ(typeURL string) *sotwType {
	t, ok := s.types[typeURL]
	if !ok {
		t = &sotwType{}
		s.types[typeURL] = t
	}
	return t
}

func (s *sotwStream) send(typeURL string, t *sotwType, version string, detail *statuspb.Status) error {
	return s.stream.Send(&discoveryv3.DiscoveryRequest{
		Node:          s.node,
		TypeUrl:       typeURL,
		VersionInfo:   version,
		ResponseNonce: t.nonce,
		ResourceNames: t.names,
		ErrorDetail:   detail,
	})
}

func (s *sotwStream) subscribe(typeURL string, names []string) error {
	t := s.typ(typeURL)
	if len(names) == 1 && names[0] == "*" {
		// SotW's classic wildcard is the empty list; go-control-plane's
		// ADS snapshot cache does not understand an explicit "*" here.
		names = nil
	}
	t.names = names
	return s.send(typeURL, t, t.acked, nil)
}

func (s *sotwStream) ack(u *update) error {
	t := s.typ(u.typeURL)
	t.acked, t.nonce = u.version, u.nonce
	return s.send(u.typeURL, t, t.acked, nil)
}

func (s *sotwStream) nack(u *update, cause error) error {
	t := s.typ(u.typeURL)
	t.nonce = u.nonce
	return s.send(u.typeURL, t, t.acked, &statuspb.Status{Code: int32(codes.InvalidArgument), Message: cause.Error()})
}

func (s *sotwStream) recv() (*update, error) {
	resp, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	u := &update{
		typeURL: resp.GetTypeUrl(),
		version: resp.GetVersionInfo(),
		nonce:   resp.GetNonce(),
		// In SotW a listener or cluster response is the whole set; route
		// and endpoint responses only carry what changed among the names
		// requested (xDS protocol, "Resource types").
		full: resp.GetTypeUrl() == ListenerType || resp.GetTypeUrl() == ClusterType,
	}
	for _, a := range resp.GetResources() {
		u.resources = append(u.resources, wireResource{any: a})
	}
	return u, nil
}

// node identifies the sidecar to the control plane.
func node(id string) *corev3.Node {
	return &corev3.Node{
		Id:                   id,
		UserAgentName:        "consulate-sidecar",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "dev"},
	}
}
