// Package bench holds end-to-end benchmarks that span packages (the
// sidecar's full proxied request). Per-package benchmarks live next to
// their code (sidecar/router BenchmarkRoute, sidecar/cluster BenchmarkPick).
//
// The data-plane comparison with nginx, HAProxy and Caddy (`make
// bench-proxies`) is a separate program, cmd/proxybench, built from
// cmd/upstream (the application), xdsstatic (a static ADS server feeding
// the sidecars), peers (the peers' configs), load (wrk, constant-rate and
// gRPC generators), procstat (CPU and RSS from /proc) and cmd/sidecarprof
// (the sidecar's data path under pprof). Figures are in README.md; the
// latest run's raw values in results/latest.json.
package bench
