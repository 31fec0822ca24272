package main

import "github.com/seed-a778acb4/consulate/internal/probe"

// probeTarget is what `control-plane probe` asks: /readyz (or /healthz
// with -live), for an exec health check (a distroless image has no curl,
// e.g. for Docker's HEALTHCHECK). Its default address is -admin-addr's.
var probeTarget = probe.Target{
	Program:     "control-plane",
	AddrEnv:     "CONSULATE_ADMIN_ADDR",
	DefaultAddr: "127.0.0.1:19000",
	Ready:       "/readyz",
	Live:        "/healthz",
}
