package server

import (
	"errors"
	"sync"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// XDS is the Translator backed by package xds, whose results are validated
// and content-versioned. Sidecars are translated through an
// xds.SidecarCache: a proxy's upstreams whose inputs did not change, and
// upstreams another proxy has too, are not translated again. It remembers
// the last proxyless translation, so
// that a service whose config entries break keeps its last good proxyless
// configuration while every other service follows Consul (one broken entry
// must not freeze every gRPC client). The zero value is ready; use a
// pointer.
type XDS struct {
	sidecars xds.SidecarCache

	mu            sync.Mutex
	lastProxyless *xds.Resources
}

// Sidecar implements Translator.
func (x *XDS) Sidecar(snap *mesh.Snapshot, proxyID string) (*cache.Snapshot, error) {
	res, err := x.sidecars.ForSidecar(snap, proxyID)
	if err != nil {
		return nil, err
	}
	return res.Snapshot()
}

// Proxyless implements Translator. A service that fails to translate is
// reported as a warning naming its config entry, and keeps what it had.
func (x *XDS) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	res, failed, err := xds.ForProxylessKeeping(snap, x.lastProxyless)
	if err != nil {
		return nil, nil, err
	}
	cs, err := res.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	x.lastProxyless = res
	return cs, append(res.Warnings(), failureWarnings(failed)...), nil
}

// failureWarnings reports services whose proxyless translation failed.
func failureWarnings(failed []xds.ServiceFailure) []xds.Warning {
	out := make([]xds.Warning, 0, len(failed))
	for _, f := range failed {
		w := xds.Warning{Resource: "listeners " + f.Service}
		var ee *xds.EntryError
		if errors.As(f.Err, &ee) {
			w.Entry = ee.Entry
		}
		if f.Kept {
			w.Message = "not translated, keeps its last good configuration: " + f.Err.Error()
		} else {
			w.Message = "not translated, has no configuration until fixed: " + f.Err.Error()
		}
		out = append(out, w)
	}
	return out
}
