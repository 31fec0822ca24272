package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/control-plane/admin"
	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/control-plane/server"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestBadEntryIsListedAndLosesNothing (issue 6, "Bad input"): config
// entries that Consul accepts but we cannot apply are listed in /status by
// kind, name and field, the affected proxy is not pushed anything (it
// keeps its last good versions), and fixing the entry clears the error and
// pushes. Two kinds of failure: an entry the model cannot decode (an
// unknown consulate_* Meta key: /status "config_entry_errors", the gauge)
// and an entry that decodes but fails the proxy's translation (a subset
// filter we cannot evaluate: the proxy's "translation_error"). A NACK of
// the route configuration names the chain's entries.
func TestBadEntryIsListedAndLosesNothing(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	setProtocolHTTP(t, a.Client)
	registerVersioned(t, a.Client, "api-1", 7001, "v1")
	registerVersioned(t, a.Client, "api-2", 7002, "v2")
	registerWeb(t, a.Client)
	goodResolver := &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "api",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1": {Filter: `Service.Meta.version == v1`},
			"v2": {Filter: `Service.Meta.version == v2`},
		}}
	writeEntry(t, a, goodResolver)
	writeEntry(t, a, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v2"}},
		Destination: &api.ServiceRouteDestination{ServiceSubset: "v2"},
	}}})

	conn := adstest.Dial(t, cp.XDS)
	web := adstest.NewMirror(t, conn, nodeFor(webProxyID), "delta", allTypes...)
	const v2Cluster = "v2.api.default.dc1.internal"
	wait := func(what string, cond func(adstest.View) bool) adstest.View {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		v, err := web.WaitFor(ctx, what, cond)
		if err != nil {
			t.Fatalf("%v; have%s", err, describe(v))
		}
		return v
	}
	wait("the v2 subset", func(v adstest.View) bool { return slices.Equal(endpointsOf(v, v2Cluster), []string{"127.0.0.1:7002"}) })

	// noPush checks that the proxy is sent nothing for a while after the
	// control plane has seen the bad entry (status already says so).
	noPush := func(what string) {
		t.Helper()
		before := web.View()
		time.Sleep(quiet) // a window in which nothing must happen, not a wait for something
		if after := web.View(); after.Responses != before.Responses {
			t.Errorf("%s: %d pushes to the proxy; want none (it keeps its last good config)%s",
				what, after.Responses-before.Responses, describe(after))
		}
	}

	t.Run("translation error: filter we cannot evaluate", func(t *testing.T) {
		bad := *goodResolver
		bad.Subsets = map[string]api.ServiceResolverSubset{
			"v1": {Filter: `Service.Meta.version == v1`},
			"v2": {Filter: `Checks.Status == passing`},
		}
		writeEntry(t, a, &bad)
		te := waitStatus(t, cp, "a translation_error on "+webProxyID, func(r admin.Report) bool {
			p := proxyIn(r, webProxyID)
			return p != nil && p.TranslationError != nil
		}).proxyTranslationError(webProxyID)
		if te.Kind != "service-resolver" || te.Name != "api" || te.Field != "Subsets[v2].Filter" || !strings.Contains(te.Error, "Checks") || te.Since.IsZero() {
			t.Errorf("translation_error = %+v, want service-resolver/api Subsets[v2].Filter naming Checks", te)
		}
		noPush("after the bad resolver")

		// Another change for the proxy: still held, logged once.
		registerVersioned(t, a.Client, "api-3", 7003, "v2")
		waitStatus(t, cp, "the model with api-3 translated", func(r admin.Report) bool {
			p := proxyIn(r, webProxyID)
			return p != nil && p.TranslationError != nil && p.TranslationError.ConsulIndex > te.ConsulIndex
		})
		noPush("after a new instance while the resolver is broken")
		if n := cp.logs.FilterMessage("sidecar translation failed; the proxy keeps its last configuration").Len(); n != 1 {
			t.Errorf("%d failure log lines for one distinct error, want 1", n)
		}
		failed := cp.logs.FilterMessage("sidecar translation failed; the proxy keeps its last configuration").All()
		if len(failed) > 0 {
			f := failed[0].ContextMap()
			if f["entry"] != "service-resolver/api" || f["field"] != "Subsets[v2].Filter" || f["node_id"] != webProxyID {
				t.Errorf("failure log fields = %v", f)
			}
		}
		waitMetric(t, cp, "consulate_cp_translation_failing_proxies 1")

		// Fixed: cleared, and the held change (api-3) arrives.
		writeEntry(t, a, goodResolver)
		wait("api-3 in v2 after the fix", func(v adstest.View) bool {
			return slices.Equal(endpointsOf(v, v2Cluster), []string{"127.0.0.1:7002", "127.0.0.1:7003"})
		})
		waitStatus(t, cp, "translation_error cleared", func(r admin.Report) bool {
			p := proxyIn(r, webProxyID)
			return p != nil && p.TranslationError == nil
		})
		waitMetric(t, cp, "consulate_cp_translation_failing_proxies 0")
	})

	t.Run("decode error: unknown consulate_ Meta key", func(t *testing.T) {
		routeV1 := []api.ServiceRoute{{
			Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v1"}},
			Destination: &api.ServiceRouteDestination{ServiceSubset: "v1"},
		}}
		rdsBefore := web.View().Versions[adstest.RouteType]
		writeEntry(t, a, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: routeV1,
			Meta: map[string]string{"consulate_retry_bakoff": "25ms"}})
		rep := waitStatus(t, cp, "config_entry_errors lists service-router/api", func(r admin.Report) bool {
			return len(r.ConfigEntryErrors) > 0
		})
		want := server.ConfigEntryError{Kind: "service-router", Name: "api", Field: "Meta[consulate_retry_bakoff]"}
		if got := rep.ConfigEntryErrors; len(got) != 1 || got[0].Kind != want.Kind || got[0].Name != want.Name ||
			got[0].Field != want.Field || got[0].Error == "" {
			t.Errorf("config_entry_errors = %+v, want one %+v with an error", got, want)
		}
		waitMetric(t, cp, "consulate_cp_config_entry_errors 1")
		noPush("after the router with an unknown key")
		if n := cp.logs.FilterMessage("config entry rejected, keeping its last good version").Len(); n != 1 {
			t.Errorf("%d log lines for the rejected router, want 1 (discovery's)", n)
		}

		// Fixed: cleared, and the new route is pushed.
		writeEntry(t, a, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: routeV1})
		wait("the fixed router's routes", func(v adstest.View) bool { return v.Versions[adstest.RouteType] != rdsBefore })
		waitStatus(t, cp, "config_entry_errors cleared", func(r admin.Report) bool { return len(r.ConfigEntryErrors) == 0 })
		waitMetric(t, cp, "consulate_cp_config_entry_errors 0")
	})

	t.Run("a NACKed route configuration names the chain's entries", func(t *testing.T) {
		c := adstest.NewSotW(t, conn, nodeFor(webProxyID))
		c.Subscribe(adstest.RouteType, "api")
		rds := c.Recv(10 * time.Second)
		if rds == nil || len(rds.GetResources()) == 0 {
			t.Fatalf("no route configuration: %v", rds)
		}
		c.NACK(rds, "", "route api: field retry_policy.retry_back_off is not supported")
		rep := waitStatus(t, cp, "the RDS NACK in /status", func(r admin.Report) bool {
			for _, p := range r.Proxies {
				if p.NodeID == webProxyID && p.Protocol == server.ProtocolSotW && p.Types[adstest.RouteType].LastNACK != nil {
					return true
				}
			}
			return false
		})
		for _, p := range rep.Proxies {
			if p.NodeID != webProxyID || p.Protocol != server.ProtocolSotW {
				continue
			}
			got := p.Types[adstest.RouteType].LastNACK.ConfigEntries
			for _, want := range []string{"proxy-defaults/global", "service-resolver/api", "service-router/api"} {
				if !slices.Contains(got, want) {
					t.Errorf("NACK config_entries = %v, want %s among them", got, want)
				}
			}
		}
	})

	t.Run("proxyless warnings: what grpc-go ignores is listed and logged once", func(t *testing.T) {
		grpcNode := nodeFor("grpc-client-1")
		grpcNode.UserAgentName = "gRPC Go"
		adstest.NewMirror(t, conn, grpcNode, "sotw", adstest.ListenerType)
		writeEntry(t, a, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: []api.ServiceRoute{{
			Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v1"}},
			Destination: &api.ServiceRouteDestination{ServiceSubset: "v1", RequestTimeout: 3 * time.Second},
		}}})
		rep := waitStatus(t, cp, "a proxyless warning from service-router/api", func(r admin.Report) bool {
			return slices.ContainsFunc(r.ProxylessWarnings, func(w server.ProxylessWarning) bool { return w.Entry == "service-router/api" })
		})
		for _, w := range rep.ProxylessWarnings {
			if w.Resource == "" || w.Message == "" {
				t.Errorf("incomplete warning %+v", w)
			}
		}
		// A change that leaves the warnings as they are logs nothing more.
		registerVersioned(t, a.Client, "api-4", 7004, "v1")
		waitStatus(t, cp, "the gRPC client classified proxyless", func(r admin.Report) bool {
			p := proxyIn(r, "grpc-client-1")
			return p != nil && p.Kind == server.KindProxyless
		})
		const msg = "proxyless configuration: grpc-go will not apply some of it"
		ctx, cancel := context.WithTimeout(t.Context(), quiet)
		defer cancel()
		<-ctx.Done() // a window for a duplicate log line to appear
		if n := cp.logs.FilterMessage(msg).Len(); n != 1 {
			t.Errorf("%d %q lines for one set of warnings, want 1", n, msg)
		}
	})
}

func registerVersioned(t *testing.T, c *api.Client, id string, port int, version string) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: id, Name: "api", Address: "127.0.0.1", Port: port, Meta: map[string]string{"version": version},
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// statusReport is a decoded /status document.
type statusReport struct{ admin.Report }

func (r statusReport) proxyTranslationError(nodeID string) *server.TranslationError {
	if p := proxyIn(r.Report, nodeID); p != nil {
		return p.TranslationError
	}
	return nil
}

func proxyIn(r admin.Report, nodeID string) *server.ProxyStatus {
	for i := range r.Proxies {
		if r.Proxies[i].NodeID == nodeID {
			return &r.Proxies[i]
		}
	}
	return nil
}

// waitStatus polls /status until cond holds (deadline 15 s).
func waitStatus(t *testing.T, cp *controlPlane, what string, cond func(admin.Report) bool) statusReport {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := httpGet(t, "http://"+cp.Admin+"/status")
		var r admin.Report
		if code == 200 && json.Unmarshal([]byte(body), &r) == nil && cond(r) {
			return statusReport{r}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status: no %s within 15s:\n%s", what, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitMetric polls /metrics until it has the line (the gauges follow the
// control plane's debounced rebuild; deadline 15 s).
func waitMetric(t *testing.T, cp *controlPlane, line string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := httpGet(t, "http://"+cp.Admin+"/metrics")
		if strings.Contains(body, line+"\n") {
			return
		}
		if time.Now().After(deadline) {
			name, _, _ := strings.Cut(line, " ")
			t.Fatalf("/metrics: no %q within 15s:\n%s", line, grepLines(body, name))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
