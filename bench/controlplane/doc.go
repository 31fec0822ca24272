// Command controlplane is the control plane's scale harness (issue 8): it
// measures how fast a change written to Consul reaches every proxy it
// concerns, with a real Consul, the real control-plane binary and a
// thousand simulated sidecars.
//
//	make bench-controlplane            # 1,000 and 10,000 services
//	go run ./bench/controlplane -services 1000 -changes 10 -control-plane bin/control-plane
//
// For each mesh size it starts a `consul agent -dev` on free loopback
// ports (the binary internal/consultest finds), registers the topology
// (see topology: 3 instances per service with one check each, half the
// services with a sidecar per instance, resolvers and routers on some,
// proxy-defaults protocol http), starts the control plane as its own
// process (so that its RSS and CPU are its own), connects the simulated
// sidecars (half State-of-the-World, half Delta, wildcard subscriptions,
// each ACKing every response at once) over a few gRPC connections, and
// then makes three kinds of change one at a time:
//
//   - an instance of a hot service fails (then recovers) its check: a
//     tenth of the proxies have that service as an upstream;
//   - a service-resolver on a hot service gets a new ConnectTimeout;
//   - proxy-defaults gets a new healthy panic threshold, which every
//     cluster of every proxy carries (a full rebuild).
//
// The latency of a change is from the write returning to the moment the
// last affected client has ACKed a response that shows it. Bytes and
// resources are everything every client received between one change and
// the next, per affected client. It prints a table and writes JSON
// (-out).
//
// Bounded: every wait has a deadline, the whole run stops after -timeout,
// everything listens on 127.0.0.1, and Consul and the control plane die
// with the harness (Pdeathsig). Client keepalive is left off: a thousand
// streams' pings in one tick overflow this host's loopback backlog
// (DESIGN.md).
//
// Concurrency: one goroutine per simulated client reads its stream and
// ACKs; it is the only writer of that client's state, which the main
// goroutine reads under the client's mutex. Every client goroutine ends
// when its stream's context is cancelled, before measure returns.
package main
