package xds

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/discovery"
	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestConsulConfigEntriesEndToEnd writes a resolver, a router and a
// splitter with the real Consul API, lets the real discovery watcher decode
// them, and checks what ForSidecar makes of them for web's sidecar: the
// routes, the subset clusters and their endpoints (filters evaluated
// against what Consul really stores). Then a resolver that Consul accepts
// and we cannot evaluate fails the translation with an EntryError, and
// deleting the entries restores the default chain.
func TestConsulConfigEntriesEndToEnd(t *testing.T) {
	a := consultest.Start(t)
	c := a.Client
	set := func(e api.ConfigEntry) {
		t.Helper()
		if ok, _, err := c.ConfigEntries().Set(e, nil); err != nil || !ok {
			t.Fatalf("writing %s/%s: ok=%v err=%v", e.GetKind(), e.GetName(), ok, err)
		}
	}
	passing := &api.AgentServiceCheck{TTL: "1h", Status: api.HealthPassing}
	register := func(id, version string, port, sidecarPort int, upstreams []api.Upstream) {
		t.Helper()
		name := id[:len(id)-2]
		err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: name, Address: "127.0.0.1", Port: port, Meta: map[string]string{"version": version},
			Check: passing,
			Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
				Port: sidecarPort, Check: passing,
				Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: upstreams},
			}},
		})
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	register("api-1", "v1", 8081, 21001, nil)
	register("api-2", "v2", 8082, 21002, nil)
	register("web-1", "v1", 8080, 21000, []api.Upstream{{DestinationName: "api", LocalBindPort: 9191}})
	set(&api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "api", DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1": {Filter: "Service.Meta.version == v1"},
			"v2": {Filter: "Service.Meta.version == v2"},
		},
		Meta: map[string]string{KeyFailurePercentageThreshold: "50"}})
	set(&api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v2"}},
		Destination: &api.ServiceRouteDestination{ServiceSubset: "v2", NumRetries: 2, RetryOnStatusCodes: []uint32{503}},
	}}})
	set(&api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "api", Splits: []api.ServiceSplit{
		{Weight: 90, ServiceSubset: "v1"}, {Weight: 10, ServiceSubset: "v2"},
	}})

	w := discovery.NewWatcher(c, discovery.Options{Coalesce: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	const webProxy = "web-1-sidecar-proxy"
	// translate waits for a snapshot on which cond holds for ForSidecar's
	// result (resources or error).
	translate := func(what string, cond func(*Resources, error) bool) (*Resources, error) {
		t.Helper()
		ch, unsubscribe := w.Subscribe()
		defer unsubscribe()
		deadline := time.After(20 * time.Second)
		var res *Resources
		var err error
		for {
			if s := w.Current(); s != nil && s.Proxy(webProxy) != nil {
				res, err = ForSidecar(s, webProxy)
				if cond(res, err) {
					return res, err
				}
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("no snapshot with %s within 20s (last error: %v)", what, err)
			}
		}
	}
	endpoints := func(res *Resources, cluster string) []string {
		var out []string
		for _, item := range res.Items(resource.EndpointType) {
			cla := item.(*endpointv3.ClusterLoadAssignment)
			if cla.GetClusterName() != cluster {
				continue
			}
			for _, l := range cla.GetEndpoints() {
				for _, e := range l.GetLbEndpoints() {
					sa := e.GetEndpoint().GetAddress().GetSocketAddress()
					out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
				}
			}
		}
		return out
	}

	want := []string{"v1.api.default.dc1.internal", "v2.api.default.dc1.internal"}
	res, _ := translate("the api chain's subset clusters with their endpoints", func(r *Resources, err error) bool {
		return err == nil && slices.Equal(clustersExceptLocal(r), want) &&
			len(endpoints(r, want[0])) == 1 && len(endpoints(r, want[1])) == 1
	})
	if diff := cmp.Diff([]string{"127.0.0.1:21001"}, endpoints(res, want[0])); diff != "" {
		t.Errorf("v1 endpoints (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"127.0.0.1:21002"}, endpoints(res, want[1])); diff != "" {
		t.Errorf("v2 endpoints (-want +got):\n%s", diff)
	}
	rc := res.Items(resource.RouteType)[0].(*routev3.RouteConfiguration)
	routes := rc.GetVirtualHosts()[0].GetRoutes()
	if len(routes) != 2 || routes[0].GetMatch().GetPrefix() != "/v2" || routes[0].GetRoute().GetCluster() != want[1] ||
		routes[0].GetRoute().GetRetryPolicy().GetNumRetries().GetValue() != 2 {
		t.Errorf("first route = %v, want /v2 → v2 with 2 retries", routes[0])
	}
	var weights []uint32
	for _, cw := range routes[len(routes)-1].GetRoute().GetWeightedClusters().GetClusters() {
		weights = append(weights, cw.GetWeight().GetValue())
	}
	if diff := cmp.Diff([]uint32{9000, 1000}, weights); diff != "" {
		t.Errorf("default route weights (-want +got):\n%s", diff)
	}

	// Consul accepts this filter (Service.Weights exists in its model); we
	// cannot evaluate it: web's translation fails naming the entry.
	set(&api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "api", DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1": {Filter: "Service.Weights.Passing == 1"},
			"v2": {Filter: "Service.Meta.version == v2"},
		}})
	_, err := translate("an EntryError for the resolver", func(_ *Resources, err error) bool { return EntryErrors(err) != nil })
	if ee := EntryErrors(err); ee.Entry != (mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: "api"}) || ee.Field != "Subsets[v1].Filter" {
		t.Errorf("EntryError = %v, want service-resolver/api Subsets[v1].Filter", ee)
	}

	// Removing the entries restores the default chain.
	for _, kind := range []string{api.ServiceRouter, api.ServiceSplitter, api.ServiceResolver} {
		if _, err := c.ConfigEntries().Delete(kind, "api", nil); err != nil {
			t.Fatalf("delete %s: %v", kind, err)
		}
	}
	translate("the default chain", func(r *Resources, err error) bool {
		return err == nil && slices.Equal(clustersExceptLocal(r), []string{"api.default.dc1.internal"})
	})
}

func clustersExceptLocal(r *Resources) []string {
	return slices.DeleteFunc(r.Names(resource.ClusterType), func(n string) bool { return n == LocalAppName })
}
