// Package config is the sidecar's runtime configuration: the small subset of
// Envoy's listener, route, cluster and endpoint model that the sidecar
// implements, decoded from xDS (see package decode) and consumed by the data
// path (router, cluster, proxy, listener).
//
// A *Config is immutable once published. The xDS client builds a complete,
// consistent Config (every route configuration a listener names, every
// cluster a route names) and swaps it in with one atomic pointer store; the
// data path reads it with one atomic load per request or connection. Nothing
// in here is mutated afterwards: live state (counters, ejections, pools)
// lives in the data path, keyed by name, never in these structs.
//
// Defaults are Envoy's documented defaults and are filled in by the decoder,
// so the data path never has to know what "unset" means.
package config
