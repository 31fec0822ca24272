// Package cluster holds the upstream side of the data path: each cluster's
// endpoints (Host), the load balancer that picks one (Picker: round robin,
// least request, random, ring hash, maglev) and each endpoint's connection
// pool, dialing with the cluster's connect_timeout: HTTP/1.1 hosts have
// the package's own keep-alive pool (Host.SendHTTP1: the request written
// and the response read on the caller's goroutine, no goroutine per
// connection or per request, see h1.go), HTTP/2 hosts net/http's
// transport speaking h2c with prior knowledge (Host.Transport, built on
// first use).
//
// HTTP/1.1 exchange (RFC 9112): Content-Length and chunked bodies both
// ways (a request body of unknown length is sent chunked, with its
// trailers; response trailers are read after the last chunk), responses
// delimited by the connection's close, no body for HEAD, 1xx (skipped,
// but 101), 204 and 304; chunked wins over Content-Length, which is then
// dropped; Connection: close, and HTTP/1.0 without keep-alive, end reuse;
// a connection is reused only when the response body was read to its end
// and the request body was all written. A request body of known length up
// to InlineBodyLimit is written with the headers; a larger or chunked one
// by a goroutine of its own while the response is read, so that an
// upstream answering early is heard. ctx ending sets the connection's
// deadline in the past (every read and write fails at once); a 101
// response hands the connection over and ctx no longer applies. A
// malformed response or an unwritable request is a *ProtocolError.
// Idle connections have no reader: one idle for more than a second is
// peeked at (non-blocking) before reuse, an idempotent request that finds
// its reused connection closed before any response byte is sent again on
// a new one (as net/http does), and idle connections expire after 90 s.
//
// Concurrency contract. A Set has one writer: the listener manager calls
// Update and Close from its own goroutine, never concurrently. Update
// returns a new immutable Snapshot (name → *Cluster) that the data path
// reads after one atomic pointer load; a *Cluster and its Picker are
// immutable, so Pick needs no lock. Live state — per-host request and
// connection counters, the connection pools, the cluster's in-flight
// request count used as the max_requests circuit breaker — lives in Host
// and in the cluster's state, reached through the snapshot and updated
// with atomics only. Live state is keyed by cluster name (and host address
// inside it) and carried into the next snapshot: an unchanged cluster is
// reused as is; a changed one keeps the Host (and its pool) of every
// address whose connection settings did not change. Status may be called
// from any goroutine (the admin /clusters endpoint).
//
// Envoy semantics (envoy.config.cluster.v3.Cluster):
//   - Endpoints whose health is UNHEALTHY, DRAINING or TIMEOUT are excluded,
//     UNKNOWN counts as healthy, DEGRADED hosts are used only when a
//     priority level has no healthy host.
//   - Priority levels share the load as Envoy computes it: a level's health
//     is min(100, 1.4 × available/total); levels take load in order up to
//     their health (normalized when the total is below 100), so a level
//     with fewer than ~72% of its hosts available spills the rest to the
//     next one. The level is drawn per request (from the request hash for
//     the hash balancers).
//   - Healthy panic threshold: when the normalized total health is below
//     100, a level with fewer than HealthyPanicThreshold percent of its hosts
//     available uses all of them; when every level panics, the load is
//     split by host count. A threshold of 0 disables panic.
//   - Round robin is weighted and smooth (nginx's algorithm), precomputed
//     into a schedule walked with one atomic counter from a random start.
//   - Least request: with equal weights, the host with the fewest active
//     requests among choice_count random picks (P2C by default). With
//     unequal weights Envoy schedules by weight / (active + 1); we draw a
//     host with probability proportional to that same effective weight,
//     which gives the same long-run shares without a lock.
//   - Random: uniform over the available hosts.
//   - Ring hash: ring sized as Envoy does (the least weighted host gets a
//     whole number of entries; between min and max ring size), entries
//     keyed "address_i". Maglev: Envoy's weighted table of MaglevTableSize
//     (65537) entries. Both hash with 64-bit FNV-1a followed by a
//     SplitMix64 finalizer (Envoy uses xxHash64; any good deterministic
//     64-bit hash gives the same properties, and a deterministic one keeps
//     every sidecar's ring identical). A request without a hash picks a
//     random host, as Envoy does.
//
// Resilience contract with the proxy (issue 5):
//   - Host.Report(Result) is called exactly once per attempt sent to a host:
//     Response with the status, or ConnectFailed, Timeout, Reset for
//     local-origin failures (LocalSuccess only where no response exists,
//     e.g. the TCP proxy). Lock-free, no allocation; it feeds the
//     cluster's outlier.Detector (see package outlier for the semantics).
//   - Cluster.PickExcluding implements the previous_hosts retry predicate
//     with host_selection_retry_max_attempts.
//   - Circuit breakers (default priority; a zero threshold in the config
//     means Envoy's default 1024/1024/1024/3): TryRequest/DoneRequest
//     (max_requests; Acquire/Release are the same), TryRetry/DoneRetry
//     (max_retries, or retry_budget: budget_percent of active + pending
//     requests, at least min_retry_concurrency). max_connections and
//     max_pending_requests are enforced by the pools and Host.Dial:
//     below max_connections a request goes straight to the pool; at it,
//     the request is pending (until it gets a connection: an idle one, or
//     a new one when a connection of the cluster closes, waiting at most
//     the connect timeout); past max_pending_requests, or when that wait
//     ends, the request fails with an *OverflowError (IsOverflow). The TCP
//     proxy's Host.Dial overflows at once at max_connections. Every
//     overflow is answered 503, flag UO, x-envoy-overloaded: true.
//
// Outlier detection and the balancer. Each cluster with
// outlier_detection has one outlier.Detector and one goroutine running
// it, started by Update and ended when the cluster or its
// outlier_detection goes away or by Close (which waits for it). Both live
// in the cluster's carried state, so a config change keeps ejections. An
// ejection or a return rebuilds the cluster's balancer (host set and
// picker) and swaps it atomically, under the state's mutex, which only
// Update and the detector's goroutine take; Pick stays one atomic load
// plus the picker. An ejected host counts as unavailable for priority
// load and the healthy panic threshold: a level that panics uses all its
// hosts, ejected ones included, as Envoy.
//
// Metrics: Set is a prometheus.Collector reading the live state at scrape
// time (circuit breaker use, remaining capacity and overflows; outlier
// ejections by reason, active ejections, overflows of
// max_ejection_percent), so the data path updates only its own atomics.
package cluster
