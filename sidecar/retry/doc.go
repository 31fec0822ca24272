// Package retry is the pure logic of Envoy's router retries
// (envoy.config.route.v3.RetryPolicy): which attempt outcomes a policy
// retries (Retriable) and how long to wait before a retry (Backoff). It
// holds no state and starts no goroutine: the proxy runs the attempts, the
// cluster owns the retry circuit breaker (max_retries or the retry budget),
// and this package only decides.
//
// Concurrency contract. Every function is pure (Backoff takes its random
// source as an argument) and safe from any goroutine.
//
// Envoy semantics (router filter docs, "x-envoy-retry-on" and
// "x-envoy-retry-grpc-on"):
//   - 5xx: any 5xx response, or no response at all: connect failure,
//     disconnect, reset, refused stream, per-try timeout.
//   - gateway-error: 502, 503 or 504, or no response at all (Envoy counts
//     an upstream reset as a 5xx for both conditions).
//   - reset: no response at all (disconnect, reset, connect failure,
//     per-try timeout).
//   - connect-failure: the connection could not be established (including
//     a connect timeout).
//   - retriable-4xx: 409 only.
//   - refused-stream: the HTTP/2 stream was reset with REFUSED_STREAM.
//   - retriable-status-codes: a status listed in retriable_status_codes.
//   - retriable-headers: a response header matches one of
//     retriable_headers (Envoy's HeaderMatcher; several values joined with
//     ","). The x-envoy-retriable-header-names request header is not
//     honoured (nothing says to trust the client).
//   - cancelled, deadline-exceeded, internal, resource-exhausted,
//     unavailable: the grpc-status in the response headers (a Trailers-Only
//     gRPC response), as Envoy reads it; trailers after a body are never
//     considered (the response has been sent by then).
//   - A response carrying x-envoy-overloaded is never retried; neither is
//     a local circuit-breaker overflow.
//   - Back-off: retry n (1-based) waits a uniformly random time in
//     [0, (2^n − 1) × base), capped at max (default 10 × base, base 25 ms):
//     0–24 ms, 0–74 ms, 0–174 ms … with the defaults ("full jitter").
//   - rate_limited_retry_back_off: when the retried response carries one
//     of reset_headers (tried in order; SECONDS like Retry-After, or
//     UNIX_TIMESTAMP) with a value not above max_interval (300 s), the
//     wait is that value plus a random jitter of up to half of it;
//     otherwise the exponential back-off applies.
package retry
