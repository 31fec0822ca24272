package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/xds"
)

// change is one write to Consul and what each affected client must see.
type change struct {
	write    func(context.Context) error
	affected []*client
	cond     func(*client) bool
}

// scenarioResult is the figures of one kind of change.
type scenarioResult struct {
	Name     string `json:"name"`
	Changes  int    `json:"changes"`
	Affected int    `json:"affected_proxies_per_change"`
	// AllACK is, per change, the time from the write to Consul returning
	// to the last affected client having ACKed the new configuration.
	AllACK percentiles `json:"change_to_all_acked_ms"`
	// PerProxy is the same, for each affected client separately.
	PerProxy percentiles `json:"change_to_proxy_acked_ms"`
	// Rebuild is the control plane's mean rebuild time in the scenario
	// (consulate_cp_rebuild_duration_seconds), Rebuilds how many ran.
	RebuildMs float64 `json:"rebuild_mean_ms"`
	Rebuilds  int     `json:"rebuilds"`
	// CPUMs is control-plane CPU per change, ConsulCPUMs Consul's (both
	// include the settle pause, when they are idle).
	CPUMs       float64 `json:"cp_cpu_ms_per_change"`
	ConsulCPUMs float64 `json:"consul_cpu_ms_per_change"`
	// Bytes and resources sent per change per affected proxy, by protocol
	// (everything any client received between two changes, divided by the
	// affected clients of that protocol).
	SotWBytes     float64 `json:"sotw_bytes_per_affected_proxy"`
	DeltaBytes    float64 `json:"delta_bytes_per_affected_proxy"`
	SotWResources float64 `json:"sotw_resources_per_affected_proxy"`
	DeltaResource float64 `json:"delta_resources_per_affected_proxy"`
	Timeouts      int     `json:"timeouts"`
}

type percentiles struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func percentilesOf(ms []float64) percentiles {
	if len(ms) == 0 {
		return percentiles{}
	}
	slices.Sort(ms)
	at := func(q float64) float64 { return ms[min(len(ms)-1, int(math.Ceil(q*float64(len(ms))))-1)] }
	return percentiles{P50: round(at(0.50)), P99: round(at(0.99)), Max: round(ms[len(ms)-1])}
}

func round(v float64) float64 { return math.Round(v*10) / 10 }

// settle is the pause after every affected client ACKed, so that whatever
// else the change causes (other proxies, late pushes) is counted with it
// and the next change starts from quiet.
const settle = 700 * time.Millisecond

// runScenario applies the changes one after the other and measures each.
func runScenario(ctx context.Context, name string, cp *controlPlane, consul *consulAgent, clients []*client, changes []change) (scenarioResult, error) {
	res := scenarioResult{Name: name, Changes: len(changes)}
	var all, per []float64
	var sotwB, deltaB, sotwR, deltaR, sotwN, deltaN float64
	sum0, n0, cpu0 := cp.metric("consulate_cp_rebuild_duration_seconds_sum"), cp.metric("consulate_cp_rebuild_duration_seconds_count"), cp.cpu()
	consulCPU0 := consul.cpu()
	for i, ch := range changes {
		res.Affected = len(ch.affected)
		mets := make([]<-chan struct{}, len(ch.affected))
		for k, c := range ch.affected {
			var fresh bool
			if mets[k], fresh = c.expect(ch.cond); !fresh {
				return res, fmt.Errorf("%s change %d: %s already shows it", name, i, c.id)
			}
		}
		before := counters(clients)
		t0 := time.Now()
		if err := ch.write(ctx); err != nil {
			return res, fmt.Errorf("%s change %d: %w", name, i, err)
		}
		deadline := time.NewTimer(30 * time.Second)
		timedOut := false
		for _, m := range mets {
			select {
			case <-m:
			case <-deadline.C:
				timedOut = true
			case <-ctx.Done():
				deadline.Stop()
				return res, ctx.Err()
			}
			if timedOut {
				break
			}
		}
		deadline.Stop()
		if timedOut {
			res.Timeouts++
		} else {
			var worst time.Duration
			for _, c := range ch.affected {
				d := c.metSince(t0)
				per = append(per, ms(d))
				worst = max(worst, d)
			}
			all = append(all, ms(worst))
		}
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return res, ctx.Err()
		}
		after := counters(clients)
		for _, c := range ch.affected {
			if c.delta {
				deltaN++
			} else {
				sotwN++
			}
		}
		sotwB += float64(after.sotwBytes - before.sotwBytes)
		deltaB += float64(after.deltaBytes - before.deltaBytes)
		sotwR += float64(after.sotwResources - before.sotwResources)
		deltaR += float64(after.deltaResources - before.deltaResources)
	}
	sum1, n1 := cp.metric("consulate_cp_rebuild_duration_seconds_sum"), cp.metric("consulate_cp_rebuild_duration_seconds_count")
	if n1 > n0 {
		res.RebuildMs = round((sum1 - sum0) / (n1 - n0) * 1000)
		res.Rebuilds = int(n1 - n0)
	}
	res.CPUMs = round(ms(cp.cpu()-cpu0) / float64(len(changes)))
	res.ConsulCPUMs = round(ms(consul.cpu()-consulCPU0) / float64(len(changes)))
	res.AllACK, res.PerProxy = percentilesOf(all), percentilesOf(per)
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return math.Round(a / b)
	}
	res.SotWBytes, res.DeltaBytes = div(sotwB, sotwN), div(deltaB, deltaN)
	res.SotWResources, res.DeltaResource = round(sotwR/max(sotwN, 1)), round(deltaR/max(deltaN, 1))
	if res.Timeouts > 0 {
		return res, fmt.Errorf("%s: %d of %d changes not ACKed by every affected proxy within 30s", name, res.Timeouts, len(changes))
	}
	return res, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

type totals struct{ sotwBytes, deltaBytes, sotwResources, deltaResources int64 }

func counters(clients []*client) totals {
	var t totals
	for _, c := range clients {
		if c.delta {
			t.deltaBytes += c.bytes.Load()
			t.deltaResources += c.resources.Load()
		} else {
			t.sotwBytes += c.bytes.Load()
			t.sotwResources += c.resources.Load()
		}
	}
	return t
}

// hotClients are the clients whose first upstream is hot service j.
func hotClients(clients []*client, j int) []*client {
	var out []*client
	for _, c := range clients {
		if c.p%hotServices == j {
			out = append(out, c)
		}
	}
	return out
}

func clusterOf(svc int) string {
	return xds.Target{Service: svcName(svc), Datacenter: "dc1"}.ClusterName()
}

// checkChanges fails, then restores, instance 0 of each hot service in turn.
func checkChanges(t topology, c *api.Client, clients []*client, n int) []change {
	var out []change
	for r := range n {
		j := r % hotServices
		status, want := api.HealthCritical, 2
		if (r/hotServices)%2 == 1 {
			status, want = api.HealthPassing, 3
		}
		svc := hot(j)
		name := clusterOf(svc)
		out = append(out, change{
			affected: hotClients(clients, j),
			// Sidecars receive critical endpoints too, marked UNHEALTHY
			// (xds/doc.go): count the others.
			cond: func(c *client) bool {
				cla := c.endpoints[name]
				n := 0
				for _, l := range cla.GetEndpoints() {
					for _, e := range l.GetLbEndpoints() {
						if e.GetHealthStatus() != corev3.HealthStatus_UNHEALTHY {
							n++
						}
					}
				}
				return n == want
			},
			write: func(ctx context.Context) error {
				return runTxns(ctx, c, api.TxnOps{{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: t.check(svc, 0, status)}}})
			},
		})
	}
	return out
}

// resolverChanges writes a service-resolver with a new ConnectTimeout on
// each hot service in turn.
func resolverChanges(t topology, c *api.Client, clients []*client, n int) []change {
	var out []change
	for r := range n {
		j := r % hotServices
		svc := hot(j)
		timeout := time.Duration(1000+r) * time.Millisecond
		name := clusterOf(svc)
		out = append(out, change{
			affected: hotClients(clients, j),
			cond:     func(c *client) bool { return c.clusters[name].GetConnectTimeout().AsDuration() == timeout },
			write: func(ctx context.Context) error {
				_, _, err := c.ConfigEntries().Set(t.resolver(svc, timeout), (&api.WriteOptions{}).WithContext(ctx))
				return err
			},
		})
	}
	return out
}

// globalChanges rewrites proxy-defaults with a new healthy panic threshold,
// which every cluster of every proxy carries: a full rebuild, every proxy
// affected.
func globalChanges(c *api.Client, clients []*client, n int) []change {
	var out []change
	for r := range n {
		threshold := float64(10 + r)
		out = append(out, change{
			affected: clients,
			cond: func(c *client) bool {
				cl := c.clusters[clusterOf(hot(c.p%hotServices))]
				return cl.GetCommonLbConfig().GetHealthyPanicThreshold().GetValue() == threshold
			},
			write: func(ctx context.Context) error {
				_, _, err := c.ConfigEntries().Set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
					Config: map[string]any{"protocol": "http", xds.KeyHealthyPanicThreshold: strconv.FormatFloat(threshold, 'f', -1, 64)}},
					(&api.WriteOptions{}).WithContext(ctx))
				return err
			},
		})
	}
	return out
}
