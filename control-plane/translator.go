package main

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// translator adapts package xds to server.Translator.
type translator struct{}

func (translator) Sidecar(snap *mesh.Snapshot, proxyID string) (*cache.Snapshot, error) {
	res, err := xds.ForSidecar(snap, proxyID)
	if err != nil {
		return nil, err
	}
	return res.Snapshot()
}

func (translator) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, error) {
	res, err := xds.ForProxyless(snap)
	if err != nil {
		return nil, err
	}
	return res.Snapshot()
}
