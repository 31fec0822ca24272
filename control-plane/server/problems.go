package server

import (
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// What the operator must fix (issue 6, "Bad input"): config entries the
// model could not decode, proxies whose translation fails, and what
// proxyless clients will not apply. Each is in /status; the log says it
// once per distinct problem (discovery logs the decode errors, so the
// control plane does not repeat them).

// ConfigEntryError is a config entry field that Consul accepted and the
// mesh model could not decode; the entry keeps its last good version.
type ConfigEntryError struct {
	Kind  mesh.EntryKind `json:"kind"`
	Name  string         `json:"name"`
	Field string         `json:"field,omitempty"`
	Error string         `json:"error"`
}

// configEntryErrors converts the model's Config.Errors for /status.
func configEntryErrors(snap *mesh.Snapshot) []ConfigEntryError {
	if snap == nil {
		return []ConfigEntryError{}
	}
	out := make([]ConfigEntryError, 0, len(snap.Config.Errors))
	for _, e := range snap.Config.Errors {
		out = append(out, ConfigEntryError{Kind: e.Entry.Kind, Name: e.Entry.Name, Field: e.Field, Error: e.Err})
	}
	return out
}

// TranslationError is why a proxy's last translation failed; the proxy
// keeps the configuration it had. Kind, Name and Field name the config
// entry at fault when the error is about one (xds.EntryError).
type TranslationError struct {
	Kind  mesh.EntryKind `json:"kind,omitempty"`
	Name  string         `json:"name,omitempty"`
	Field string         `json:"field,omitempty"`
	Error string         `json:"error"`
	// ConsulIndex is the model the translation last failed on.
	ConsulIndex uint64 `json:"consul_index"`
	// Since is when this error first appeared (it is not reset while the
	// same error repeats).
	Since time.Time `json:"since"`
}

func newTranslationError(err error, index uint64, now time.Time) *TranslationError {
	te := &TranslationError{Error: err.Error(), ConsulIndex: index, Since: now}
	if ee := xds.EntryErrors(err); ee != nil {
		te.Kind, te.Name, te.Field = ee.Entry.Kind, ee.Entry.Name, ee.Field
	}
	return te
}

// same reports whether te and o are the same problem (time and index aside).
func (te *TranslationError) same(o *TranslationError) bool {
	return te != nil && o != nil && te.Kind == o.Kind && te.Name == o.Name && te.Field == o.Field && te.Error == o.Error
}

func (te *TranslationError) fields() []zap.Field {
	f := []zap.Field{zap.String("error", te.Error), zap.Uint64("consul_index", te.ConsulIndex)}
	if te.Kind != "" {
		f = append(f, zap.String("entry", mesh.EntryRef{Kind: te.Kind, Name: te.Name}.String()),
			zap.String("entry_kind", string(te.Kind)), zap.String("entry_name", te.Name), zap.String("field", te.Field))
	}
	return f
}

// ProxylessWarning is something in the proxyless configuration that grpc-go
// will not apply (xds.Warning).
type ProxylessWarning struct {
	Resource string `json:"resource"`
	// Entry is the config entry it came from ("service-router/api"), if any.
	Entry   string `json:"entry,omitempty"`
	Message string `json:"message"`
}

func (w ProxylessWarning) String() string {
	if w.Entry == "" {
		return w.Resource + ": " + w.Message
	}
	return w.Resource + " (from " + w.Entry + "): " + w.Message
}

func proxylessWarnings(ws []xds.Warning) []ProxylessWarning {
	out := make([]ProxylessWarning, 0, len(ws))
	for _, w := range ws {
		pw := ProxylessWarning{Resource: w.Resource, Message: w.Message}
		if w.Entry.Kind != "" {
			pw.Entry = w.Entry.String()
		}
		out = append(out, pw)
	}
	slices.SortFunc(out, func(a, b ProxylessWarning) int {
		return strings.Compare(a.Resource+"\x00"+a.Entry+"\x00"+a.Message, b.Resource+"\x00"+b.Entry+"\x00"+b.Message)
	})
	return slices.Compact(out)
}
