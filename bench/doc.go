// Package bench holds end-to-end benchmarks that span packages (the
// sidecar's full proxied request). Per-package benchmarks live next to
// their code (sidecar/router BenchmarkRoute, sidecar/cluster BenchmarkPick).
// Figures are in README.md.
package bench
