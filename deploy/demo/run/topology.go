package main

import (
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

// member is one demo service instance: its app and its registration.
type member struct {
	launch.Instance
	// failureRate is the fraction of requests the app answers 503.
	failureRate float64
	flaky       bool
}

// topology is web → api (v1 and v2) → payments (three instances, one
// flaky). Ports are assigned by assignPorts.
func topology() []*member {
	inst := func(svc, id, version string, ups ...string) launch.Instance {
		i := launch.Instance{Service: svc, ID: id, Version: version}
		for _, u := range ups {
			i.Upstreams = append(i.Upstreams, launch.Upstream{Service: u})
		}
		return i
	}
	return []*member{
		{Instance: inst("payments", "payments-1", "v1")},
		{Instance: inst("payments", "payments-2", "v1")},
		{Instance: inst("payments", "payments-3", "v1"), failureRate: 0.3, flaky: true},
		{Instance: inst("api", "api-v1", "v1", "payments")},
		{Instance: inst("api", "api-v2", "v2", "payments")},
		{Instance: inst("web", "web-1", "v1", "api")},
	}
}

// configEntries are written before any sidecar starts, as
// `consul config write` would. Issue 7's later scenarios (a
// service-resolver with v1/v2 subsets, a service-splitter, a
// service-router with retries, passive health checks in
// proxy-defaults' UpstreamConfig) are added here once the control plane
// and sidecar carry them (issues 5 and 6).
func configEntries() []api.ConfigEntry {
	return []api.ConfigEntry{
		&api.ProxyConfigEntry{
			Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
			Config: map[string]any{"protocol": "http"},
		},
	}
}

// assignPorts gives every app, sidecar and upstream bind port a free
// loopback port.
func assignPorts(ms []*member) error {
	n := 0
	for _, m := range ms {
		n += 2 + len(m.Upstreams)
	}
	ports, err := launch.FreePorts(n)
	if err != nil {
		return err
	}
	next := func() int { p := ports[0]; ports = ports[1:]; return p }
	for _, m := range ms {
		m.AppPort, m.SidecarPort = next(), next()
		for i := range m.Upstreams {
			m.Upstreams[i].LocalBindPort = next()
		}
	}
	return nil
}
