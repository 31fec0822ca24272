// Package listener runs the sidecar's listeners from a config.Config: HTTP
// connection managers (codec_type AUTO: HTTP/1.1 served by package
// h1server and h2c, handed over to net/http's server, on the same port;
// HTTP1: h1server alone; HTTP2: net/http's h2c server alone; requests
// answered by package proxy) and TCP proxies (bidirectional copy with
// half-close).
//
// Usage:
//
//	m, err := listener.NewManager(log, prometheus.DefaultRegisterer, listener.Options{})
//	err = m.Apply(cfg)     // every time the xDS client publishes a config
//	hosts := m.Clusters()  // admin /clusters: each host's live state
//	err = m.Close(ctx)     // drain and stop
//
// Concurrency contract. Apply and Close are serialized by the Manager (they
// are called by the xDS client's single goroutine and at shutdown; a mutex
// guards the listener table, never touched by the request path). Clusters
// and Addr may be called from any goroutine. Per request or connection the
// data path does one atomic load of the listener's current state; Apply
// builds a new immutable state and stores it.
//
// Apply is idempotent and keeps what did not change:
//   - a listener whose name and address are unchanged keeps its socket and
//     its connections; its new state (routes, clusters, settings) is
//     swapped in, and requests in flight finish on the state they started
//     with;
//   - a listener that is removed, or whose address or kind (TCP, or HTTP
//     with its codec) changed, stops accepting at once and drains in the background (up
//     to Options.DrainTimeout: in-flight requests finish, HTTP/2 clients
//     get GOAWAY) while its replacement, if any, is opened;
//   - cluster live state (per-host counters and connection pools) is keyed
//     by cluster name and carried over (package cluster).
//
// If a listener cannot be opened (address in use), Apply opens and updates
// all the others and returns an error naming the listener.
//
// Goroutines: one accept loop per listener (h1server.Server.Serve, plus
// net/http's for the h2c connections it hands over, or the TCP accept
// loop) plus the connection goroutines; all end when the listener is
// stopped, and Close waits for them.
package listener
