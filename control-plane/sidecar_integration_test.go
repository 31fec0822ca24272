package main

import (
	"context"
	"slices"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/control-plane/server"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// edsDeadline is how fast a Consul change must reach a connected proxy.
const edsDeadline = time.Second

var allTypes = []string{adstest.ClusterType, adstest.EndpointType, adstest.ListenerType, adstest.RouteType}

// TestSidecarFollowsConsul: a sidecar registration yields its listeners,
// routes, clusters and endpoints, and a registered or failing upstream
// instance changes EDS within a second, over SotW and Delta.
func TestSidecarFollowsConsul(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	registerWeb(t, a.Client)
	conn := adstest.Dial(t, cp.XDS)

	for i, protocol := range []string{"sotw", "delta"} {
		t.Run(protocol, func(t *testing.T) {
			m := adstest.NewMirror(t, conn, nodeFor(webProxyID), protocol, allTypes...)
			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			v, err := m.WaitFor(ctx, "web-1's sidecar config", func(v adstest.View) bool {
				return hasAll(v.Names(adstest.ListenerType), "public_listener", "upstream:api") &&
					hasAll(v.Names(adstest.ClusterType), "local_app", "api.default.dc1.internal") &&
					hasAll(v.Names(adstest.RouteType), "api") &&
					slices.Equal(apiEndpoints(v), []string{"127.0.0.1:7001"})
			})
			if err != nil {
				t.Fatalf("%v; have%s", err, describe(v))
			}
			// The previous subtest's stream was closed by its cleanup; the
			// server forgets it once gRPC tells it, which can come after
			// this stream's first responses.
			oneStream := func(got []server.ProxyStatus) bool {
				return len(got) == 1 && got[0].Kind == server.KindSidecar && string(got[0].Protocol) == protocol
			}
			if got := waitStreams(t, cp.Server, webProxyID, oneStream, 5*time.Second); !oneStream(got) {
				t.Errorf("status of %s = %+v, want one %s sidecar stream", webProxyID, got, protocol)
			}

			// A service the proxy does not use changes nothing for it.
			quietFrom := m.View().Responses
			if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
				ID: "unrelated-" + protocol, Name: "unrelated", Address: "127.0.0.1", Port: 7100 + i}); err != nil {
				t.Fatal(err)
			}
			_, meta, err := a.Client.Catalog().Service("unrelated", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			waitRebuiltAt(t, cp, meta.LastIndex)
			if got := m.View().Responses; got != quietFrom {
				t.Errorf("an unrelated registration caused %d pushes to %s", got-quietFrom, webProxyID)
			}

			// A new upstream instance.
			newID := []string{"api-2", "api-3"}[i]
			newAddr := []string{"127.0.0.1:7002", "127.0.0.1:7003"}[i]
			start := time.Now()
			registerAPI(t, a.Client, newID, 7002+i)
			ctx1, cancel1 := context.WithTimeout(t.Context(), edsDeadline)
			defer cancel1()
			if _, err := m.WaitFor(ctx1, "the new instance in EDS", func(v adstest.View) bool {
				return hasAll(apiEndpoints(v), "127.0.0.1:7001", newAddr)
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("registration → EDS: %v", time.Since(start))

			// Its TTL check fails: it stays in EDS marked UNHEALTHY, as
			// Consul sends it (for panic routing), no longer HEALTHY.
			start = time.Now()
			if err := a.Client.Agent().UpdateTTLOpts("ttl-"+newID, "down", api.HealthCritical, nil); err != nil {
				t.Fatal(err)
			}
			ctx2, cancel2 := context.WithTimeout(t.Context(), edsDeadline)
			defer cancel2()
			if _, err := m.WaitFor(ctx2, "the failed instance UNHEALTHY in EDS", func(v adstest.View) bool {
				return slices.Equal(apiEndpoints(v), []string{"127.0.0.1:7001"}) &&
					hasAll(apiEndpointsWith(v, core.HealthStatus_UNHEALTHY), newAddr)
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("failed TTL check → EDS: %v", time.Since(start))
		})
	}
}

// TestSidecarConnectingBeforeItsRegistration: a sidecar whose proxy ID
// Consul does not know yet is logged and served nothing, then gets its
// configuration as soon as the registration appears.
func TestSidecarConnectingBeforeItsRegistration(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	m := adstest.NewMirror(t, adstest.Dial(t, cp.XDS), nodeFor(webProxyID), "delta", allTypes...)

	waitLog(t, cp, "node is not a sidecar registered in Consul nor a gRPC client; serving nothing until its proxy registration appears", 10*time.Second)
	if st := statusOf(cp.Server, webProxyID); len(st) != 1 || st[0].Kind != server.KindUnregistered {
		t.Errorf("status = %+v, want one unregistered stream", st)
	}
	if v := m.View(); v.Responses != 0 {
		t.Fatalf("an unregistered sidecar was sent %d responses:%s", v.Responses, describe(v))
	}

	registerWeb(t, a.Client)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if v, err := m.WaitFor(ctx, "config once registered", fullSidecarConfig); err != nil {
		t.Fatalf("%v; have%s", err, describe(v))
	}
}
