// Package decode turns Envoy v3 xDS resources (Listener, RouteConfiguration,
// Cluster, ClusterLoadAssignment) into the sidecar's runtime config
// (package sidecar/config), filling in Envoy's documented defaults.
//
// Only what config holds is implemented. Every resource is first walked
// with protoreflect against a per-message allow-list (allow.go): a populated
// field outside it, an Any of a type we do not implement, or unknown wire
// fields make the whole resource fail with an error naming the field path,
// so the xDS client can NACK it instead of silently ignoring it. Then the
// protoc-gen-validate rules are checked (validate.go reads them from the
// descriptors rather than calling the generated Validate methods, issue 8),
// then the typed conversion runs.
//
// Errors start with the resource kind and name, e.g.
//
//	listener "x": filter_chains[0].filters[0].typed_config: field tracing is not supported
//
// Concurrency: every function is pure (no shared state besides read-only
// tables built at init) and safe to call from any goroutine. Decoded values
// are fresh and never retained by this package.
package decode
