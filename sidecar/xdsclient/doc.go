// Package xdsclient is the sidecar's ADS client: one gRPC stream to the
// control plane (Incremental/Delta by default, State-of-the-World on
// request) that subscribes to listeners and clusters (wildcard), then to
// the route configurations the listeners name and the load assignments the
// EDS clusters name, decodes every resource (package decode), ACKs what it
// accepts and NACKs what it cannot implement with an error_detail naming
// the resource and the field.
//
// Resources that reference each other (listener → route configuration →
// cluster → endpoints) are applied as one consistent config: a
// *config.Config is built only when every referenced resource is present
// (Envoy's warming; a referenced route configuration, load assignment or
// cluster that has not arrived within its config source's
// initial_fetch_timeout, default 15 s, stops blocking, as in Envoy),
// handed to the Apply callback and, when that succeeds,
// published with one atomic pointer store. A rejected update, or one the
// Apply callback refuses, leaves the last good config serving.
//
// When the stream breaks the client reconnects with capped exponential
// backoff and full jitter, starts its resource view afresh on the new
// stream, and keeps the last published config serving until the new
// stream has produced a complete one (static stability). Ready reports
// whether any config has been published yet.
//
// Concurrency contract: Run owns all mutable state and runs the event loop
// on the calling goroutine; per stream, one extra goroutine only receives
// and hands responses to the loop, and it ends when the stream's context
// is cancelled. Apply is called from Run's goroutine, never concurrently
// with itself. Current, Applied and Ready are safe from any goroutine
// (atomic loads). Everything ends when Run's context is done.
package xdsclient
