package main

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestOnlyAffectedProxiesFollowAChain: with a real Consul and discovery,
// a change reaches the proxies whose discovery chains reach it and no
// other: a resolver written on web-1's upstream is pushed to web-1 only;
// once it redirects api to db, a new db instance reaches web-1 through the
// chain as well as web-2, whose upstream db is; removing the resolver
// takes web-1 back. It fails if the control plane skips a proxy whose
// inputs changed, or pushes to one whose inputs did not.
func TestOnlyAffectedProxiesFollowAChain(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	registerPlain(t, a.Client, "db", "db-1", 7201)
	registerWeb(t, a.Client)
	err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-2", Name: "web", Address: "127.0.0.1", Port: 8081,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{Port: 21001,
			Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: []api.Upstream{{DestinationName: "db", LocalBindPort: 9192}}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn := adstest.Dial(t, cp.XDS)
	web1 := adstest.NewMirror(t, conn, nodeFor(webProxyID), "delta", allTypes...)
	web2 := adstest.NewMirror(t, conn, nodeFor("web-2-sidecar-proxy"), "sotw", allTypes...)

	const apiCluster, dbCluster = "api.default.dc1.internal", "db.default.dc1.internal"
	wait := func(m *adstest.Mirror, what string, cond func(adstest.View) bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		defer cancel()
		if v, err := m.WaitFor(ctx, what, cond); err != nil {
			t.Fatalf("%v; have%s", err, describe(v))
		}
	}
	endpointsAre := func(cluster string, want ...string) func(adstest.View) bool {
		return func(v adstest.View) bool { return slices.Equal(endpointsOf(v, cluster), want) }
	}
	// Wait for the whole HTTP configuration, not only the endpoints: a
	// first build from a model that predates proxy-defaults' protocol
	// would otherwise still be followed by its LDS and RDS pushes, counted
	// below as pushes caused by the resolver (a flake under load).
	httpConfig := func(upstream string) func(adstest.View) bool {
		return func(v adstest.View) bool {
			return hasAll(v.Names(adstest.RouteType), upstream) &&
				hasAll(v.Names(adstest.ListenerType), "public_listener", "upstream:"+upstream) &&
				hasAll(v.Names(adstest.ClusterType), "local_app", upstream+".default.dc1.internal")
		}
	}
	wait(web1, "web-1's HTTP config", httpConfig("api"))
	wait(web2, "web-2's HTTP config", httpConfig("db"))
	wait(web1, "web-1 on api-1", endpointsAre(apiCluster, "127.0.0.1:7001"))
	wait(web2, "web-2 on db-1", endpointsAre(dbCluster, "127.0.0.1:7201"))

	// A resolver on api redirecting to db: web-1 only.
	web2Before, web2Versions := web2.View().Responses, web2.View().Versions
	writeEntry(t, a, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "api",
		Redirect: &api.ServiceResolverRedirect{Service: "db"}})
	wait(web1, "web-1 redirected to db", endpointsAre(dbCluster, "127.0.0.1:7201"))
	if got := web2.View(); got.Responses != web2Before {
		t.Errorf("a resolver on api, which web-2 does not reach, caused %d pushes to web-2: versions %v → %v", got.Responses-web2Before, web2Versions, got.Versions)
	}

	// A new db instance: web-2 directly, web-1 through its chain.
	registerPlain(t, a.Client, "db", "db-2", 7202)
	wait(web2, "web-2 sees db-2", endpointsAre(dbCluster, "127.0.0.1:7201", "127.0.0.1:7202"))
	wait(web1, "web-1 sees db-2 through the redirect", endpointsAre(dbCluster, "127.0.0.1:7201", "127.0.0.1:7202"))

	// Without the resolver, web-1 is back on api; web-2 is not told.
	web2Before = web2.View().Responses
	if _, err := a.Client.ConfigEntries().Delete(api.ServiceResolver, "api", nil); err != nil {
		t.Fatal(err)
	}
	wait(web1, "web-1 back on api", endpointsAre(apiCluster, "127.0.0.1:7001"))
	if got := web2.View().Responses; got != web2Before {
		t.Errorf("deleting api's resolver caused %d pushes to web-2", got-web2Before)
	}
}

// registerPlain registers an instance without a sidecar and with a passing
// TTL check.
func registerPlain(t *testing.T, c *api.Client, name, id string, port int) {
	t.Helper()
	err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: name, Address: "127.0.0.1", Port: port,
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing}})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// writeEntry writes a config entry.
func writeEntry(t *testing.T, a *consultest.Agent, e api.ConfigEntry) {
	t.Helper()
	if _, _, err := a.Client.ConfigEntries().Set(e, nil); err != nil {
		t.Fatalf("write %s/%s: %v", e.GetKind(), e.GetName(), err)
	}
}

// endpointsOf lists the host:port endpoints of one cluster's load
// assignment in a view, sorted.
func endpointsOf(v adstest.View, cluster string) []string {
	var cla endpointv3.ClusterLoadAssignment
	if !v.Decode(adstest.EndpointType, cluster, &cla) {
		return nil
	}
	var out []string
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue()))
		}
	}
	slices.Sort(out)
	return out
}
