package main

import (
	"time"

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

// apiSplit is the demo's v1/v2 traffic split of api, in percent.
var apiSplit = []struct {
	Subset string
	Weight float32
}{{"v1", 80}, {"v2", 20}}

// configEntries are written before any sidecar starts, as
// `consul config write` would: HTTP everywhere; api's two versions as
// subsets (service-resolver, filtering on the registration's
// Meta.version) with 80 % of web's calls to v1 and 20 % to v2
// (service-splitter: a canary); api's calls to payments
// retried on a 503 (Consul's service-router RetryOnStatusCodes; our
// default previous_hosts predicate sends the retry to another instance);
// and api's sidecar ejecting a payments instance after 3 consecutive 5xx
// (service-defaults UpstreamConfig PassiveHealthCheck → Envoy outlier
// detection). The flaky payments-3 is then masked: its 503s are retried
// elsewhere and it is ejected for a while.
func configEntries() []api.ConfigEntry {
	baseEjection := 10 * time.Second
	resolver := &api.ServiceResolverConfigEntry{
		Kind: api.ServiceResolver, Name: "api", DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{},
	}
	splitter := &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "api"}
	for _, s := range apiSplit {
		resolver.Subsets[s.Subset] = api.ServiceResolverSubset{Filter: "Service.Meta.version == " + s.Subset}
		splitter.Splits = append(splitter.Splits, api.ServiceSplit{Weight: s.Weight, ServiceSubset: s.Subset})
	}
	return []api.ConfigEntry{
		&api.ProxyConfigEntry{
			Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
			Config: map[string]any{"protocol": "http"},
		},
		resolver,
		splitter,
		&api.ServiceRouterConfigEntry{
			Kind: api.ServiceRouter, Name: "payments",
			Routes: []api.ServiceRoute{{
				Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/"}},
				Destination: &api.ServiceRouteDestination{
					NumRetries:         2,
					RetryOnStatusCodes: []uint32{503},
				},
			}},
		},
		&api.ServiceConfigEntry{
			Kind: api.ServiceDefaults, Name: "api", Protocol: "http",
			UpstreamConfig: &api.UpstreamConfiguration{
				Overrides: []*api.UpstreamConfig{{
					Name: "payments",
					PassiveHealthCheck: &api.PassiveHealthCheck{
						Interval:         time.Second,
						MaxFailures:      3,
						BaseEjectionTime: &baseEjection,
					},
				}},
			},
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
