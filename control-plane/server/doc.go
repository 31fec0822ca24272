// Package server is the control plane's xDS side: a go-control-plane ADS
// server (State-of-the-World and Delta on one gRPC service), a snapshot cache
// holding one snapshot per connected proxy, the loop that rebuilds those
// snapshots when the mesh model changes, and per-proxy status (what was sent,
// ACKed and NACKed).
//
// # Pieces
//
//   - streams (streams.go) implements go-control-plane's server callbacks. It
//     tracks every open stream (node ID from the first request, peer address,
//     protocol), logs pushes, ACKs and NACKs, feeds metrics and /status, and
//     tells the builder which node IDs are connected.
//   - builder (builder.go) owns the per-node build state. It is one event
//     loop: model changes trigger a rebuild of the connected nodes whose
//     inputs changed (a change after a quiet debounce window at once, the
//     changes that follow it coalesced until debounce of quiet, at most
//     maxDelay); a newly connected node is built at once
//     from the current model. A snapshot whose per-type versions equal the
//     last one set for that node is not set again, so an unchanged proxy is
//     not re-pushed.
//   - deps (deps.go) decides which sidecars a model change concerns: a
//     sidecar's inputs are its own registration and, for every service its
//     chains reach, the service, its sidecars' registrations and its config
//     entries. Two models are compared by pointer (discovery shares
//     unchanged values); a global change (datacenter, proxy-defaults, entry
//     errors, any field deps does not attribute) rebuilds every node.
//   - classify (kind.go) tells sidecars (node ID is a connect-proxy service
//     ID in the model) from proxyless gRPC clients (user agent "gRPC ...")
//     from sidecars Consul does not know yet (served nothing until they
//     appear). Proxyless clients share one translation per model.
//   - Source and Translator are the two inputs; discovery.Watcher is a
//     Source and XDS (xds.go) adapts package xds to Translator.
//   - configEntries (entries.go) names the Consul config entries behind a
//     NACKed resource: for a listener or route configuration the whole
//     discovery chain (routers, splitters, resolvers, service-defaults of
//     every service it reaches), for a cluster its service's entries, its
//     resolver's redirect and failover services' and the proxy's own
//     service-defaults.
//   - problems.go is what /status says the operator must fix (issue 6):
//     the model's undecodable config entries (Config.Errors; discovery
//     logs each once, so the server does not), a node's translation error
//     (the xds.EntryError's kind, name and field; the node keeps its last
//     snapshot, the error is logged once per distinct error and cleared by
//     the next successful translation) and the proxyless translation's
//     warnings (what grpc-go ignores; logged once per distinct set).
//   - stage.go orders a change make-before-break (the xDS protocol's
//     "eventual consistency considerations"): a change that adds clusters
//     first sets the union of old and new clusters and endpoints under the
//     old routes, one that removes clusters then sets the new routes over
//     that union, and only then the target. The builder sets each next
//     step once every stream of the node answered (ACK or NACK) the step
//     before, or after stepTimeout. A change that adds or removes no
//     cluster (endpoints, a route's policy) is set at once.
//   - nackGuard (nackguard.go) wraps the SnapshotCache. go-control-plane's
//     cache answers a State-of-the-World NACK (which carries the last
//     *accepted* version) by re-sending the current, rejected version at once,
//     and the client rejects it again: a hot loop. The guard opens the watch
//     at the rejected version instead, so the next response waits for new
//     content.
//
// # Concurrency contract
//
// go-control-plane calls the callbacks from one goroutine per stream; streams
// guards its state with one mutex and never calls out while holding it,
// except into the cache's ClearSnapshot (lock order: streams.mu, then the
// cache's lock; the cache never calls back). The builder's state is touched
// only by its loop goroutine (and by the worker goroutines of one rebuild,
// which end before the rebuild returns; each worker owns the nodes it
// builds, including their translation error, which it copies into streams
// for /status). The proxyless warnings are written inside the rebuild's
// proxyless Once and published through an atomic pointer for /status. The builder never blocks the
// producer of model changes: Source subscriptions are capacity-1 signals,
// node changes are a set plus a capacity-1 kick channel, and ACKs/NACKs a
// capacity-1 "answered" signal the loop reads to advance staged changes. Run returns when its
// context is done; every goroutine started here ends then.
package server
