// Package proxy is the HTTP forwarding handler of an HTTP connection
// manager listener: route (package router), pick a cluster and a host
// (package cluster), forward with the host's pool, stream the response back,
// log it (package accesslog) and count it (Prometheus).
//
// Concurrency contract. A Handler serves any number of requests at once.
// Everything a request needs — route table, clusters, connection manager
// settings — is in one immutable State read with a single atomic load at
// the start of the request; Swap publishes a new State and requests already
// running finish on the one they loaded (drain). The hot path takes no lock:
// live counters are atomics, metrics children are cached per cluster and
// status code in atomic pointers, copy buffers come from a sync.Pool.
// Each request's working state (exchange), its guard (one timer for the
// stream idle, request and route timeouts; the attempts' context; see
// guard.go) and its upstream header map are pooled and reused once the
// request is over; HTTP/1.1 upstreams are reached with the cluster
// package's own pool (Host.SendHTTP1), HTTP/2 ones with net/http's
// transport. The downstream going away is watched from 20 ms into a
// request on (reads and writes on its connection fail at once anyway).
// Upgraded (WebSocket) connections are tracked so that Close can end them;
// each upgraded connection uses one extra goroutine that ends when either
// side closes or Close is called.
//
// Retries (envoy.config.route.v3.RetryPolicy, the route's, else the
// virtual host's; conditions, back-off and budget math in package retry):
//   - Each attempt picks a host (previous_hosts: Cluster.PickExcluding with
//     host_selection_retry_max_attempts), counts on it (Begin/End) and
//     reports its outcome exactly once with Host.Report (Response with the
//     status, ConnectFailed, Timeout or Reset) so that outlier detection
//     sees every attempt. Downstream disconnects and stream idle timeouts
//     say nothing about the host and are not reported.
//   - A retriable outcome is retried after the jittered exponential
//     back-off while num_retries last and the cluster's retry breaker
//     (TryRetry, held until the retry's response headers) allows it. Used
//     up: the last outcome is returned with URX added to its flags
//     (e.g. "URX" on a forwarded 503, "UF,URX" on a local 503). Breaker
//     full: no retry, UO added, the last outcome returned — Envoy's
//     upstream_rq_retry_overflow; a request refused by max_requests or by
//     max_connections/max_pending_requests (an *OverflowError from the
//     pool) is answered 503 UO with x-envoy-overloaded: true.
//   - The route timeout starts once the request was received and bounds
//     every attempt and back-off (504 UT, never URX); per_try_timeout
//     bounds one attempt and counts as a timeout, retried under 5xx,
//     gateway-error and reset; per_try_idle_timeout ends an attempt whose
//     upstream was silent that long (before headers: retried likewise;
//     after: the stream is reset, UT).
//   - Back-off: rate_limited_retry_back_off when the response carries a
//     usable reset header (Retry-After…), else the jittered exponential
//     back-off (package retry).
//   - Body replay: with a retry policy the request body is read into a
//     pooled buffer of at most the listener's
//     per_connection_buffer_limit_bytes (1 MiB default), lowered by the
//     route's (else the virtual host's) per_request_buffer_limit_bytes,
//     and sent again on
//     each attempt; a larger body streams through (what was read first,
//     then the rest) and the request is not retried, as Envoy does when
//     its buffer overflows. Without a policy the body streams and nothing
//     is buffered. While a body is buffered, the stream idle timeout and a
//     client disconnect end the read (read deadline), so a slow client
//     cannot hold the proxy.
//   - Slow clients (HttpConnectionManager): request_timeout (off by
//     default) answers 408 when the whole request is not in by then; it is
//     disarmed at the end of the body or when the response starts. When a
//     request ends early (request or stream idle timeout, route timeout,
//     client gone) while its body is still being read, the read is aborted
//     (read deadline) so that the transport and the handler return, and a
//     local reply to an HTTP/1.1 request whose body was not read closes
//     the connection instead of draining the body. Header reading is
//     bounded by the listener (package listener).
//   - x-envoy-attempt-count (from 1) is sent upstream when the virtual
//     host sets include_request_attempt_count (overriding a previous
//     hop's), and to the client with include_attempt_count_in_response
//     (also on local replies after an attempt); never otherwise. The x-envoy-retry-on, x-envoy-retry-grpc-on,
//     x-envoy-max-retries and x-envoy-upstream-rq-per-try-timeout-ms
//     request headers are not honoured: nothing in the config says to
//     trust them, and an application must not widen the mesh's policy.
//
// Envoy semantics:
//   - No virtual host or no route: 404, flag NR. A route naming an unknown
//     cluster: 503 NC. No available host: 503 UH. max_requests reached:
//     503 UO. Connect failure: 503 UF. Route timeout: 504 UT (from the end
//     of the request, or of its buffering, to the end of the response). Upstream
//     closed or reset before the response headers: 503 UC (HTTP/1.1) or
//     UR (HTTP/2 stream reset). A malformed upstream response: 502 UPE.
//     An error after the response started resets the downstream stream.
//     Local replies to gRPC requests are Trailers-Only gRPC responses
//     (grpc-status from the HTTP code: 503/504 → UNAVAILABLE, 404 →
//     UNIMPLEMENTED, …) as Envoy sends them; the access log keeps the HTTP
//     code. Stream idle timeout (route idle_timeout, else the connection
//     manager's stream_idle_timeout): 408 SI before the response, reset
//     after.
//   - Hop-by-hop headers (RFC 9110 section 7.6.1 and those named in
//     Connection) are removed both ways; "te: trailers" is kept for gRPC.
//     x-forwarded-for gets the peer address appended when the connection
//     manager has use_remote_address; x-forwarded-proto is set to the
//     downstream scheme when absent or when use_remote_address is set;
//     x-request-id is generated (UUIDv4) when absent and
//     generate_request_id is on.
//   - Like Envoy's router (suppress_envoy_headers off), the upstream gets
//     x-envoy-original-path when the path was rewritten and the client
//     gets x-envoy-upstream-service-time.
//   - host_rewrite_literal replaces :authority; auto_host_rewrite uses the
//     picked endpoint's address (Envoy uses the endpoint's hostname, which
//     the runtime config does not carry). prefix_rewrite and regex_rewrite
//     rewrite the path as received (never re-encoded), keeping the query.
//   - Header mutations apply per level in Envoy's order — weighted cluster,
//     route, virtual host, route configuration — each level removing then
//     adding, so the outermost level wins on overwrite.
//   - Trailers (gRPC status) are forwarded; streaming responses are flushed
//     as they arrive; Upgrade (WebSocket) requests are passed through on
//     HTTP/1.1 upstreams.
package proxy
