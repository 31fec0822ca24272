package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/listener"
)

func upstream(b *testing.B) *httptest.Server {
	b.Helper()
	return startUpstream(b, false)
}

// startUpstream serves a small JSON answer over HTTP/1.1, or h2c (prior
// knowledge) as well when h2c is set.
func startUpstream(b *testing.B, h2c bool) *httptest.Server {
	b.Helper()
	body := []byte(`{"status":"ok","items":[1,2,3]}`)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	if h2c {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP1(true)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	s.Start()
	b.Cleanup(s.Close)
	return s
}

// jsonLogger writes real JSON access-log lines to io.Discard, so the
// benchmark pays for encoding them.
func jsonLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zap.InfoLevel))
}

func keepAliveClient(b *testing.B) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func doGet(b *testing.B, c *http.Client, url string) {
	res, err := c.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("status %d", res.StatusCode)
	}
}

// BenchmarkProxyHTTP1 is one full proxied request over loopback: client →
// sidecar listener (routing, round robin, pooled HTTP/1.1 upstream
// connection, access log, metrics) → upstream http.Server, and back. The
// client, the sidecar and the upstream share the process, so allocs/op
// counts all three; BenchmarkDirectHTTP1 is the same request without the
// sidecar, the baseline to subtract.
func BenchmarkProxyHTTP1(b *testing.B) {
	url := startSidecar(b, startUpstream(b, false), config.HTTP1)
	c := keepAliveClient(b)
	doGet(b, c, url)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		doGet(b, c, url)
	}
}

// BenchmarkProxyH2C is the same request over h2c on both sides, with
// concurrent streams multiplexed on one downstream and one upstream
// connection (the gRPC shape).
func BenchmarkProxyH2C(b *testing.B) {
	url := startSidecar(b, startUpstream(b, true), config.HTTP2)
	tr := &http.Transport{Protocols: new(http.Protocols), DisableCompression: true}
	tr.Protocols.SetUnencryptedHTTP2(true)
	b.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	doGet(b, c, url)
	b.ReportAllocs()
	b.ResetTimer()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			doGet(b, c, url)
		}
	})
}

// startSidecar runs a listener manager routing /api/ to up and returns the
// URL to request.
func startSidecar(b *testing.B, up *httptest.Server, proto config.Protocol) string {
	b.Helper()
	m, err := listener.NewManager(jsonLogger(), prometheus.NewRegistry(), listener.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
	err = m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{"web": {Name: "web", Address: "127.0.0.1:0",
			HTTP: &config.HTTPConnectionManager{RouteConfigName: "r", GenerateRequestID: true, UseRemoteAddress: true}}},
		Routes: map[string]*config.RouteConfig{"r": {Name: "r", VirtualHosts: []*config.VirtualHost{{
			Name: "api", Domains: []string{"*"},
			Routes: []*config.Route{
				{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/admin", CaseSensitive: true}, DirectResponse: &config.DirectResponseAction{Status: 403}},
				{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api/", CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "app", Timeout: 15 * time.Second}},
			},
		}}}},
		Clusters: map[string]*config.Cluster{"app": {Name: "app", Protocol: proto, ConnectTimeout: time.Second, HealthyPanicThreshold: 50,
			Endpoints: []config.Endpoint{{Address: up.Listener.Addr().String(), Weight: 1}}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return "http://" + m.Addr("web").String() + "/api/items?page=2"
}

// BenchmarkDirectHTTP1 is BenchmarkProxyHTTP1's request sent straight to
// the upstream: the baseline.
func BenchmarkDirectHTTP1(b *testing.B) {
	up := upstream(b)
	url := up.URL + "/api/items?page=2"
	c := keepAliveClient(b)
	doGet(b, c, url)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		doGet(b, c, url)
	}
}
