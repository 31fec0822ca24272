package server

import (
	"strings"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Kind is what a connected xDS node is, as far as the control plane can tell.
type Kind string

const (
	// KindSidecar is a connect-proxy registered in Consul under the node ID.
	KindSidecar Kind = "sidecar"
	// KindProxyless is a gRPC client using the xds:/// resolver.
	KindProxyless Kind = "proxyless"
	// KindUnregistered is a node that is neither: a sidecar whose proxy
	// registration is not (yet) in Consul. It is served nothing until it
	// appears.
	KindUnregistered Kind = "unregistered"
)

// Protocol is the xDS transport variant of a stream.
type Protocol string

const (
	ProtocolSotW  Protocol = "sotw"
	ProtocolDelta Protocol = "delta"
)

// classify decides a node's kind. A node ID naming a proxy registration is a
// sidecar. Otherwise a gRPC library (user_agent_name "gRPC Go", "gRPC Java",
// "gRPC C-core"...) is a proxyless client; anything else (Envoy, our sidecar)
// is a sidecar whose registration Consul does not hold yet.
func classify(snap *mesh.Snapshot, node *core.Node) Kind {
	if snap.Proxy(node.GetId()) != nil {
		return KindSidecar
	}
	if isGRPCLibrary(node) {
		return KindProxyless
	}
	return KindUnregistered
}

func isGRPCLibrary(node *core.Node) bool {
	return strings.HasPrefix(strings.ToLower(node.GetUserAgentName()), "grpc")
}
