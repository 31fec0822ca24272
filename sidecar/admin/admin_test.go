package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/protobuf/proto"

	"github.com/seed-a778acb4/consulate/sidecar/admin"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fixture is an admin server whose applied state the test sets.
type fixture struct {
	applied atomic.Pointer[xdsclient.Applied]
	reg     *prometheus.Registry
	srv     *admin.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry()}
	srv, err := admin.New(admin.Options{
		Addr: "127.0.0.1:0", Logger: zaptest.NewLogger(t), Gatherer: f.reg,
		Applied: f.applied.Load,
		Status: func() xdsclient.Status {
			return xdsclient.Status{Connected: true, Waiting: []string{`route "web"`},
				Rejected: map[string]xdsclient.Rejection{"cluster": {Version: "v2", Error: `cluster "web": field transport_socket is not supported`}}}
		},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.srv = srv
	return f
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func sampleApplied() *xdsclient.Applied {
	return &xdsclient.Applied{
		Config: &config.Config{Clusters: map[string]*config.Cluster{
			"web": {Name: "web", EDSServiceName: "web",
				CircuitBreakers: config.CircuitBreakers{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3},
				Endpoints: []config.Endpoint{
					{Address: "10.0.0.1:21000", Weight: 1, Health: config.HealthHealthy, Locality: "eu/a/"},
					{Address: "10.0.0.2:21000", Weight: 3, Health: config.HealthDraining},
				}},
		}},
		Resources: map[string][]proto.Message{
			xdsclient.ListenerType: {dt.HTTPListener("public", "127.0.0.1", 21000, "web")},
			xdsclient.ClusterType:  {dt.EDSCluster("web")},
		},
		Versions: map[string]string{xdsclient.ListenerType: "v1"},
		At:       time.Unix(1700000000, 0).UTC(),
	}
}

func TestReady(t *testing.T) {
	f := newFixture(t)
	code, body := f.get(t, "/ready")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/ready before the first config = %d %q, want 503", code, body)
	}
	for _, want := range []string{"waiting for: route \"web\"", `rejected cluster version "v2": cluster "web": field transport_socket is not supported`} {
		if !strings.Contains(body, want) {
			t.Errorf("/ready body lacks %q:\n%s", want, body)
		}
	}
	if code, _ := f.get(t, "/config_dump"); code != http.StatusServiceUnavailable {
		t.Errorf("/config_dump before the first config = %d, want 503", code)
	}
	f.applied.Store(sampleApplied())
	if code, body := f.get(t, "/ready"); code != http.StatusOK {
		t.Fatalf("/ready after the first config = %d %q, want 200", code, body)
	}
}

func TestConfigDump(t *testing.T) {
	f := newFixture(t)
	f.applied.Store(sampleApplied())
	code, body := f.get(t, "/config_dump")
	if code != http.StatusOK {
		t.Fatalf("/config_dump = %d %s", code, body)
	}
	var dump struct {
		XDS       xdsclient.Status
		Versions  map[string]string
		Resources map[string][]map[string]any
	}
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatalf("config_dump is not JSON: %v\n%s", err, body)
	}
	if !dump.XDS.Connected || dump.XDS.Rejected["cluster"].Version != "v2" {
		t.Errorf("config_dump xds status = %+v", dump.XDS)
	}
	if got := dump.Versions[xdsclient.ListenerType]; got != "v1" {
		t.Errorf("listener version = %q, want v1", got)
	}
	if n := len(dump.Resources["listeners"]); n != 1 || dump.Resources["listeners"][0]["name"] != "public" {
		t.Fatalf("listeners = %v", dump.Resources["listeners"])
	}
	if !strings.Contains(body, `"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"`) {
		t.Errorf("typed_config not expanded in the dump:\n%s", body)
	}
	if n := len(dump.Resources["route_configurations"]); n != 0 {
		t.Errorf("route_configurations = %d, want 0", n)
	}
}

func TestClusters(t *testing.T) {
	f := newFixture(t)
	f.applied.Store(sampleApplied())
	_, text := f.get(t, "/clusters")
	for _, want := range []string{
		"web::default_priority::max_connections::1024\n",
		"web::10.0.0.1:21000::health_flags::healthy\n",
		"web::10.0.0.1:21000::weight::1\n",
		"web::10.0.0.1:21000::locality::eu/a/\n",
		"web::10.0.0.2:21000::health_flags::/eds_status_draining\n",
		"web::10.0.0.2:21000::weight::3\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, text)
		}
	}

	// The data path reports live host state through the hook.
	f.srv.SetHostStats(func() []admin.HostStats {
		return []admin.HostStats{{Cluster: "web", Address: "10.0.0.1:21000", Ejected: true, ActiveRequests: 2, Requests: 10, ConnectFailures: 5}}
	})
	_, text = f.get(t, "/clusters")
	for _, want := range []string{
		"web::10.0.0.1:21000::health_flags::/failed_outlier_check\n",
		"web::10.0.0.1:21000::ejected::true\n",
		"web::10.0.0.1:21000::cx_connect_fail::5\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, text)
		}
	}
	_, js := f.get(t, "/clusters?format=json")
	var got struct {
		Clusters []struct {
			Name  string
			Hosts []struct {
				Address     string
				HealthFlags string `json:"health_flags"`
				Weight      uint32
			}
		}
	}
	if err := json.Unmarshal([]byte(js), &got); err != nil {
		t.Fatalf("json: %v\n%s", err, js)
	}
	type host = struct {
		Address     string
		HealthFlags string `json:"health_flags"`
		Weight      uint32
	}
	want := []host{{"10.0.0.1:21000", "/failed_outlier_check", 1}, {"10.0.0.2:21000", "/eds_status_draining", 3}}
	if len(got.Clusters) != 1 {
		t.Fatalf("clusters = %+v", got.Clusters)
	}
	if diff := cmp.Diff(want, got.Clusters[0].Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "consulate_test_total", Help: "test"})
	f.reg.MustRegister(c)
	c.Add(3)
	code, body := f.get(t, "/metrics")
	if code != http.StatusOK || !strings.Contains(body, "consulate_test_total 3") {
		t.Fatalf("/metrics = %d:\n%s", code, body)
	}
}

func TestNonLoopbackAddressRejected(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:19100", "10.1.2.3:19100", ":19100", "example.com:1"} {
		t.Run(addr, func(t *testing.T) {
			_, err := admin.New(admin.Options{Addr: addr, Logger: zaptest.NewLogger(t), Gatherer: prometheus.NewRegistry(),
				Applied: func() *xdsclient.Applied { return nil }})
			if err == nil {
				t.Fatalf("New(%q) succeeded, want a loopback error", addr)
			}
		})
	}
}

func TestServeOverSocket(t *testing.T) {
	f := newFixture(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.srv.Serve(ctx, lis) }()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + lis.Addr().String() + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/ready = %d, want 503", resp.StatusCode)
	}
	client.CloseIdleConnections()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
