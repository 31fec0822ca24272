// Package discovery watches Consul and keeps an immutable mesh model
// (package mesh) current.
//
// API contract (used by the control plane):
//
//	client, err := discovery.NewClient(discovery.ClientConfig{Address: addr})
//	w := discovery.NewWatcher(client, discovery.Options{...}, logger)
//	go w.Run(ctx)                 // returns when ctx is done
//	snap := w.Current()           // newest *mesh.Snapshot, nil before the first
//	ch, cancel := w.Subscribe()   // ch (capacity 1) is signalled after each publish
//	defer cancel()
//
// Subscribers read Current() when signalled; a slow subscriber only misses
// intermediate snapshots, it never blocks the watcher. NewClient reads the
// same environment as Consul's CLI (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN,
// CONSUL_CACERT, CONSUL_CLIENT_CERT, CONSUL_CLIENT_KEY, CONSUL_HTTP_SSL, ...).
//
// # What is watched, and why this way
//
// Consul caps HTTP connections per client IP (200 by default), so one
// blocking query per service cannot scale to the 10,000 services the
// watcher is designed for. It holds eight long-lived blocking queries
// instead:
//
//   - /v1/catalog/services: the set of service names (and their tags);
//   - /v1/health/state/critical and /v1/health/state/warning: the checks
//     that are not passing, so a status change names its service (or, for
//     a node check, its node and thus the services on it);
//   - /v1/config/<kind> for proxy-defaults, service-defaults, service-router,
//     service-splitter and service-resolver (raw JSON, decoded per entry so
//     that one bad entry costs only itself).
//
// When one of these moves, the watcher diffs the response with the
// previous one and fetches only the services that changed, with
// non-blocking /v1/health/service/<name> queries (instances, node and
// checks in one response), at most Options.FetchConcurrency (8) at a time.
//
// # Only the non-passing checks
//
// Passing checks are not watched: /v1/health/state/any is every check
// (13.5 MB for 30,000), and Consul re-sends it whole on every check change.
// A non-passing query is as large as the unhealthy set. Consul's blocking
// query on /v1/health/state/<status> wakes when a check enters, leaves or
// changes within that status (its watch is on the status index) and
// answers with the checks table's index. A check that leaves both sets
// became passing or was deregistered; one that moves from critical to
// warning leaves one set and enters the other; a passing check added or
// removed does not change health (no checks aggregates as passing too).
// Maintenance mode is Consul's critical _service_maintenance:<id> and
// _node_maintenance checks. Two status queries rather than one
// /v1/health/state/any?filter=Status!="passing": Consul evaluates a filter
// on every check of the table on every check change, where a status query
// reads its status index only and wakes only for its status (30,000
// checks, 10 unhealthy, on a dev agent: 0.3 ms per status query, 31 ms for
// the filtered one, 340 ms and 13 MB for the unfiltered one).
//
// The diffs of consecutive responses name every service whose non-passing
// checks changed between them, but a fetch can land between two responses
// and show a state neither shows (passing → critical → passing in
// between), or come from a lagging server and show a state older than the
// response that named the service. Each fetch is therefore verified
// against each set (verify in health.go): if the fetch's X-Consul-Index
// (the service's last write, checks included) is at most the set's index
// and their non-passing checks for the service differ, the fetch is the
// older one and the service is refetched; a fetch with a higher index is
// verified when the set's next response arrives (its checks changed after
// the set's index, which wakes the set's query). Tests hold both races:
// TestWatcherSeesTransitionBetweenTwoPolls, TestWatcherRefetchesStaleFetch.
//
// # Catalog moves that nothing names
//
// One change is invisible to the name diff and the non-passing diffs: an
// instance added, changed or removed under an existing name with passing
// checks or none. The catalog index still moves, so each move is kept
// until a targeted fetch shows it to be that service's write (a removed
// name is its own): an instance whose ModifyIndex is the catalog index,
// or, when an instance is gone, a per-service X-Consul-Index equal to it.
// A higher index is no evidence: check writes move a service's index too,
// so one flapping check would otherwise "explain" every other service's
// moves (a burst of 100 check-less registrations once stayed at ~40
// instances for good that way; TestWatcherSeesCheckLessBurst). And a move
// can hide another: a response covers every write since the previous one
// and reports only the last index, and one transaction can write several
// services. So every move is also followed by a probe (probe.go): one
// non-blocking read of /v1/health/state/any, three coalescing windows
// later (one probe covers every move before it, and probes are spaced as
// much), whose service-level check IDs are compared with each service's
// last fetch; the services that differ are fetched (an instance with
// checks comes and goes with them; TestWatcherSeesMaskedRegistration), and
// so are the services with a check-less instance, which no probe can see
// (few in a mesh, where instances and sidecars have checks). A move that
// no fetch has explained once the probe's fetches have landed triggers a
// refetch of every service (an instance changed in place). Every service is also refetched when an
// index goes backwards (a restarted -dev agent, a restored snapshot), when
// Consul becomes reachable after an outage (it may have restarted
// meanwhile), and every Options.Resync (10 minutes) as that safety net.
// A full refetch is one request per service name (sidecar services
// included) at bounded concurrency, and a probe one read of every check
// (13 MB for 30,000): costs of registrations, never of a check change.
//
// Blocking queries follow Consul's documented rules: an index of 0 is
// treated as 1, an index that goes backwards resets the wait index to 0, an
// unchanged index means nothing changed, and consecutive requests of one
// watch are spaced by the coalescing window (rate limiting). Errors back
// off exponentially from Options.MinBackoff (100 ms) to Options.MaxBackoff
// (30 s) with jitter, and the request after an error starts again from
// index 0: Consul holds a query until its index exceeds the wait index, so
// against a restarted agent whose index is now lower, keeping the old one
// would hide every change for a whole WaitTime. Every request has a
// deadline (its wait plus Consul's jitter plus 30 s) so that a connection
// that died silently is noticed.
//
// # Coalescing
//
// Changes are batched: fetches start one Options.Coalesce window (150 ms)
// after the first change, and a snapshot is published at most once per
// window, after the fetches in flight have landed (fetches may defer a due
// publish by at most ten windows, so snapshots flow under constant churn).
// The first change after a quiet window (no fetch and no publish for a
// whole window) is the exception: it is fetched and published at once, so
// a lone check change waits for no window; what follows it waits for the
// next. 500 registrations in about 3 s give 12 to 17 snapshots
// (TestWatcherCoalescesBurst).
//
// # Consul unreachable
//
// The last snapshot stays current. The first failure logs the warning
// "consul unreachable, serving the last snapshot" ("..., no snapshot yet"
// before the first one) with the field unreachable_since, repeated every
// 30 s while it lasts; once every failing query has succeeded again,
// "consul reachable again" is logged, and everything is refetched. The
// watches resume by themselves.
//
// # Model building
//
// BuildSnapshot is a pure function from fetched data (Input) to a
// *mesh.Snapshot. The watcher uses the same code incrementally: it keeps
// each service's converted instances and each entry's decoding (by
// ModifyIndex) and, on a rebuild, copies the previous snapshot's maps and
// redoes only the services that changed and those whose sidecars changed.
// Unchanged *mesh.Service values are shared between snapshots.
//
// A config entry that Consul accepted but that we cannot use (a duration
// that does not parse, a regex that is not RE2, split weights that do not
// sum to 100, an unknown protocol, load-balancer policy or hash field, an
// undefined default subset) is listed in Config.Errors with its kind, name
// and field, and the previous good version of that entry stays in the
// model (last good config); the watcher logs each new error once.
//
// # Concurrency contract
//
// Run owns one event-loop goroutine, the only writer of the watcher's
// state; watch goroutines and fetch batches (one at a time, each with its
// bounded workers) send it typed messages over channels. Published
// snapshots are never mutated, so Current() is a lock-free atomic load.
// Subscriber channels are signalled without blocking under a mutex private
// to this package. Every goroutine Run starts ends when its context is
// done, and Run returns only after all of them have.
package discovery
