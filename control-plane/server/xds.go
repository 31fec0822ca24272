package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// XDS is the Translator backed by package xds, whose results are validated
// and content-versioned.
type XDS struct{}

// Sidecar implements Translator.
func (XDS) Sidecar(snap *mesh.Snapshot, proxyID string) (*cache.Snapshot, error) {
	res, err := xds.ForSidecar(snap, proxyID)
	if err != nil {
		return nil, err
	}
	return res.Snapshot()
}

// Proxyless implements Translator.
func (XDS) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	res, err := xds.ForProxyless(snap)
	if err != nil {
		return nil, nil, err
	}
	cs, err := res.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	return cs, res.Warnings(), nil
}
