package xdsclient

import (
	"context"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// deltaStream speaks Incremental (Delta) ADS: subscriptions change by
// difference, ACKs carry only the nonce.
type deltaStream struct {
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
	subs   map[string][]string
}

func openDelta(ctx context.Context, conn *grpc.ClientConn, nodeID string) (*deltaStream, error) {
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	return &deltaStream{stream: st, node: node(nodeID), subs: make(map[string][]string)}, nil
}

func (s *deltaStream) subscribe(typeURL string, names []string) error {
	cur := s.subs[typeURL]
	have, want := nameSet(cur), nameSet(names)
	var add, drop []string
	for _, n := range names {
		if _, ok := have[n]; !ok {
			add = append(add, n)
		}
	}
	for _, n := range cur {
		if _, ok := want[n]; !ok {
			drop = append(drop, n)
		}
	}
	s.subs[typeURL] = names
	if len(add) == 0 && len(drop) == 0 {
		return nil
	}
	return s.stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		Node:                     s.node,
		TypeUrl:                  typeURL,
		ResourceNamesSubscribe:   add,
		ResourceNamesUnsubscribe: drop,
	})
}

// nameSet returns the set of names.
func nameSet(names []string) map[string]struct{} {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set
}

func (s *deltaStream) ack(u *update) error {
	return s.stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: s.node, TypeUrl: u.typeURL, ResponseNonce: u.nonce})
}

func (s *deltaStream) nack(u *update, cause error) error {
	return s.stream.Send(&discoveryv3.DeltaDiscoveryRequest{
		Node:          s.node,
		TypeUrl:       u.typeURL,
		ResponseNonce: u.nonce,
		ErrorDetail:   &statuspb.Status{Code: int32(codes.InvalidArgument), Message: cause.Error()},
	})
}

func (s *deltaStream) recv() (*update, error) {
	resp, err := s.stream.Recv()
	if err != nil {
		return nil, err
	}
	u := &update{
		typeURL: resp.GetTypeUrl(),
		version: resp.GetSystemVersionInfo(),
		nonce:   resp.GetNonce(),
		removed: resp.GetRemovedResources(),
	}
	for _, r := range resp.GetResources() {
		u.resources = append(u.resources, wireResource{name: r.GetName(), version: r.GetVersion(), any: r.GetResource()})
	}
	return u, nil
}
