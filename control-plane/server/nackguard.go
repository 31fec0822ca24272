package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"
)

// nackGuard keeps go-control-plane's SnapshotCache from re-sending a
// rejected version in a loop.
//
// The State-of-the-World protocol has a NACK carry the client's last
// *accepted* version_info plus error_detail (xDS protocol, "ACK/NACK and
// resource type instance version"). snapshotCache.CreateWatch (pkg/cache/v3
// simple.go) compares that version with the snapshot's; they differ, so it
// responds at once with the same rejected resources, which the client rejects
// again, and so on, as fast as the stream allows. Here a NACKed request opens
// its watch as if the client held the rejected version: the cache then
// answers only when the snapshot's version moves on, and the proxy stays on
// its last accepted configuration meanwhile.
//
// Delta needs no guard: the delta server records what it sent as the
// client's state whether it is ACKed or not, so a NACK opens a quiet watch.
type nackGuard struct {
	cache.SnapshotCache
	nacked func(nodeID, typeURL, nonce string) (string, bool)
}

// CreateWatch implements cache.ConfigWatcher.
func (g nackGuard) CreateWatch(req *cache.Request, sub cache.Subscription, out chan cache.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		if v, ok := g.nacked(req.GetNode().GetId(), req.GetTypeUrl(), req.GetResponseNonce()); ok {
			held := proto.Clone(req).(*cache.Request)
			held.VersionInfo = v
			req = held
		}
	}
	return g.SnapshotCache.CreateWatch(req, sub, out)
}
