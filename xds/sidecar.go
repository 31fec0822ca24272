package xds

import (
	"errors"
	"fmt"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// ErrUnknownProxy is returned (wrapped) by ForSidecar when the snapshot has
// no proxy with the requested ID: the sidecar registered under another ID,
// or its registration has not reached the snapshot yet. Test with
// errors.Is.
var ErrUnknownProxy = errors.New("unknown proxy")

// ForSidecar translates the mesh into the resources of the connect-proxy
// registered as proxyID: its public listener and local_app cluster, and for
// each upstream a listener, a route configuration (HTTP protocols) and an
// EDS cluster with its load assignment. A proxy receives only what its
// upstreams need, never the whole mesh.
//
// The result has passed Validate. An error names the generator and the
// resource or config entry at fault; the caller keeps serving what it had.
func ForSidecar(snap *mesh.Snapshot, proxyID string) (*Resources, error) {
	if snap == nil {
		return nil, fmt.Errorf("sidecar %s: nil snapshot", proxyID)
	}
	p := snap.Proxy(proxyID)
	if p == nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, ErrUnknownProxy)
	}
	items := make([]types.Resource, 0, 2+4*len(p.Upstreams))

	public, err := publicResources(snap, p)
	if err != nil {
		return nil, err
	}
	items = append(items, public...)

	upstreams, err := upstreamResources(snap, p)
	if err != nil {
		return nil, err
	}
	items = append(items, upstreams...)

	res, err := NewResources(items...)
	if err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, err)
	}
	if err := Validate(res); err != nil {
		return nil, fmt.Errorf("sidecar %s: %w", proxyID, err)
	}
	return res, nil
}
