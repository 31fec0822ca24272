package main

import "github.com/seed-a778acb4/consulate/internal/probe"

// probeTarget is what `sidecar probe` asks: the admin endpoint's /ready
// (200 once the first complete configuration is applied), for an exec
// health check where the loopback-only admin endpoint is out of an
// orchestrator's reach. Its default address is -admin-addr's.
var probeTarget = probe.Target{
	Program:     "sidecar",
	AddrEnv:     "CONSULATE_ADMIN_ADDR",
	DefaultAddr: "127.0.0.1:19100",
	Ready:       "/ready",
}
