// Package load generates the benchmark's traffic, to loopback addresses
// only, each run bounded in time:
//
//   - Wrk runs wrk (closed loop, N keep-alive connections) for maximum
//     requests per second and parses its summary;
//   - ConstantRate sends HTTP GETs at a fixed rate (an open-loop schedule
//     served by a pool of keep-alive workers) and keeps every latency, so
//     percentiles are exact rather than bucketed;
//   - GRPC runs unary calls (grpc.health.v1.Health/Check) from a few
//     concurrent workers on one HTTP/2 connection.
//
// Concurrency: each function owns the goroutines it starts and waits for
// them before returning; all end when the duration passes or ctx is done.
package load
