// Package e2e holds Consulate's end-to-end tests: real processes — a
// Consul agent (internal/consultest), the control-plane and sidecar
// binaries built once by TestMain, the demo runner — and in-test HTTP
// servers as the apps, all on free loopback ports.
//
// Every test bounds its traffic (a paced request loop or a fixed count),
// waits on conditions with deadlines (admin endpoints, Consul health)
// rather than sleeping, asserts a bound on client-visible failures, and
// stops every process group it started at cleanup.
package e2e
