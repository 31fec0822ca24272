package xds

import (
	"fmt"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Warning is something a consumer will not apply as the config entry asks,
// although the resources are valid: grpc-go ignores (or would NACK, so we
// leave out) several route and cluster fields a real Envoy and our sidecar
// honour. ForProxyless records one per field and resource; the control
// plane logs them.
type Warning struct {
	// Resource is the resource the field was left out of, e.g.
	// "routes api" or "clusters v2.api.default.dc1.internal".
	Resource string
	// Entry is the config entry the field came from (Kind empty when none).
	Entry   mesh.EntryRef
	Message string
}

func (w Warning) String() string {
	if w.Entry.Kind == "" {
		return fmt.Sprintf("%s: %s", w.Resource, w.Message)
	}
	return fmt.Sprintf("%s (from %s): %s", w.Resource, w.Entry, w.Message)
}

// warnings collects warnings during one translation (nil: discard).
type warnings struct{ list []Warning }

func (w *warnings) add(resource string, entry mesh.EntryRef, format string, args ...any) {
	if w == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	for _, have := range w.list {
		if have.Resource == resource && have.Entry == entry && have.Message == msg {
			return
		}
	}
	w.list = append(w.list, Warning{Resource: resource, Entry: entry, Message: msg})
}

// Warnings returns what the consumer of r will not apply as configured
// (proxyless gRPC only; nil for sidecars). Do not modify the slice.
func (r *Resources) Warnings() []Warning { return r.warnings }
