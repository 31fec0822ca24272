package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/h1server"
	"github.com/seed-a778acb4/consulate/sidecar/router"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testProxy is a Handler served by a real http.Server (HTTP/1.1 + h2c) on
// loopback, with its access log observed.
type testProxy struct {
	addr     string
	handler  *Handler
	logs     *observer.ObservedLogs
	set      *cluster.Set
	registry *prometheus.Registry
}

func (p *testProxy) url(path string) string { return "http://" + p.addr + path }

// logFor returns the latest access-log entry for path, waiting for it: the
// line is written after the response, so it may lag the client.
func (p *testProxy) logFor(t *testing.T, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		all := p.logs.FilterMessage("access").All()
		for i := len(all) - 1; i >= 0; i-- {
			if m := all[i].ContextMap(); m["path"] == path {
				return m
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no access log entry for %s", path)
	return nil
}

func startProxy(t *testing.T, rc *config.RouteConfig, clusters map[string]*config.Cluster, hcm *config.HTTPConnectionManager) *testProxy {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	set := cluster.NewSet(log)
	snap := set.Update(clusters)
	if hcm == nil {
		hcm = &config.HTTPConnectionManager{UseRemoteAddress: true, GenerateRequestID: true}
	}
	h := NewHandler(log, accesslog.New(log, accesslog.Options{}), metrics, &State{Listener: "test", HCM: hcm, Routes: router.Compile(rc), Clusters: snap})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	// As the listener serves it: HTTP/1.x by the sidecar's own server, h2c
	// handed to net/http's.
	srv := &h1server.Server{
		Handler:  h,
		H2C:      &http.Server{Handler: h, Protocols: &protos, ErrorLog: zap.NewStdLog(log)},
		ErrorLog: zap.NewStdLog(log),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		h.Close(ctx)
		set.Close()
	})
	return &testProxy{addr: ln.Addr().String(), handler: h, logs: logs, set: set, registry: reg}
}

// upstream starts an HTTP/1.1 (or h2c when h2 is set) server.
func upstream(t *testing.T, h2 bool, fn http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewUnstartedServer(fn)
	if h2 {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
		s.Config.Protocols.SetHTTP1(true)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func addrOf(s *httptest.Server) string { return s.Listener.Addr().String() }

func oneHost(name, addr string, proto config.Protocol) *config.Cluster {
	return &config.Cluster{Name: name, Protocol: proto, ConnectTimeout: time.Second, Endpoints: []config.Endpoint{{Address: addr, Weight: 1}}}
}

// catchAll is a route configuration with one virtual host "*" and routes.
func catchAll(routes ...*config.Route) *config.RouteConfig {
	return &config.RouteConfig{Name: "rc", VirtualHosts: []*config.VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: routes}}}
}

func toCluster(name string) *config.Route {
	return &config.Route{Name: "to-" + name, Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: name}}
}

// client returns an HTTP/1.1 client or, with h2c, an HTTP/2 prior knowledge
// one; its idle connections are closed at cleanup.
func client(t *testing.T, h2c bool) *http.Client {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols), DisableCompression: true}
	if h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatal(err)
	}
	return res, string(b)
}

func newReq(t *testing.T, method, url string, body string, hdr ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return req
}
