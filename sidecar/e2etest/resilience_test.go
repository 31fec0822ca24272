package e2etest

import (
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/dns"
	"github.com/seed-a778acb4/consulate/sidecar/listener"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient/xdstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sidecar is the data path of the sidecar binary (xDS client → listener
// manager) with its logs observed.
type sidecar struct {
	listeners *listener.Manager
	logs      *observer.ObservedLogs
}

func startSidecar(t *testing.T, controlPlane, nodeID string) *sidecar {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	log := zap.New(core)
	reg := prometheus.NewRegistry()
	m, err := listener.NewManager(log, reg, listener.Options{DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	resolver := dns.New(log, func(_ context.Context, cfg *config.Config) error { return m.Apply(cfg) }, nil)
	client, err := xdsclient.New(xdsclient.Options{
		NodeID: nodeID, ControlPlane: controlPlane, Logger: log, Registerer: reg,
		Apply: resolver.Apply,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Go(func() { resolver.Run(ctx) })
		client.Run(ctx)
		wg.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		closeCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		m.Close(closeCtx)
	})
	return &sidecar{listeners: m, logs: logs}
}

func freePort(t *testing.T) uint32 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint32(l.Addr().(*net.TCPAddr).Port)
}

func hostPort(t *testing.T, s *httptest.Server) dt.HostPort {
	t.Helper()
	h, p, _ := net.SplitHostPort(s.Listener.Addr().String())
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return dt.HostPort{Host: h, Port: uint32(port)}
}

// TestRetriesAndOutlierDetectionMaskAFlakyHost: three upstreams, one
// failing half of its requests with 503. With a retry policy (5xx, three
// retries, previous_hosts) and outlier detection (consecutive_5xx 3) the
// client sees at least 99.9% success over 10,000 requests; the access log
// says why (attempts, the failing host on first attempts only) and the
// outlier detector logs the ejection.
func TestRetriesAndOutlierDetectionMaskAFlakyHost(t *testing.T) {
	var hits [3]atomic.Int64
	var ups []*httptest.Server
	for i := range 3 {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			io.Copy(io.Discard, r.Body)
			if i == 0 && rand.IntN(2) == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		}))
		t.Cleanup(s.Close)
		ups = append(ups, s)
	}
	flaky := ups[0].Listener.Addr().String()

	rc := dt.Route("web", "backend")
	rc.VirtualHosts[0].Routes[0].GetRoute().RetryPolicy = &routev3.RetryPolicy{
		RetryOn:    "5xx",
		NumRetries: wrapperspb.UInt32(3),
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
			Name:       "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: dt.MustAny(&previoushostsv3.PreviousHostsPredicate{})},
		}},
		HostSelectionRetryMaxAttempts: 3,
	}
	cl := dt.StaticCluster("backend", hostPort(t, ups[0]), hostPort(t, ups[1]), hostPort(t, ups[2]))
	cl.ConnectTimeout = durationpb.New(time.Second)
	// Envoy's default max_retries (3 retries in flight per cluster) would
	// turn away retries while many requests hit the flaky host at once; a
	// retry budget scales with the traffic.
	cl.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		RetryBudget: &clusterv3.CircuitBreakers_Thresholds_RetryBudget{
			BudgetPercent:       &typev3.Percent{Value: 50},
			MinRetryConcurrency: wrapperspb.UInt32(10),
		},
	}}}
	cl.OutlierDetection = &clusterv3.OutlierDetection{
		Consecutive_5Xx:  wrapperspb.UInt32(3),
		Interval:         durationpb.New(time.Second),
		BaseEjectionTime: durationpb.New(time.Minute),
	}
	port := freePort(t)
	cp := xdstest.Start(t, "127.0.0.1:0")
	sc := startSidecar(t, cp.Addr, "web-1-sidecar-proxy")
	cp.Set("web-1-sidecar-proxy", xdstest.Snapshot(t, "v1", map[string][]types.Resource{
		resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", port, "web")},
		resourcev3.RouteType:    {rc},
		resourcev3.ClusterType:  {cl},
	}))
	url := "http://127.0.0.1:" + strconv.Itoa(int(port)) + "/api"
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	xdstest.WaitFor(t, "the sidecar's listener", 10*time.Second, func() bool {
		res, err := c.Get(url + "/ready")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode == 200
	})
	if nacks := cp.NACKs(); len(nacks) > 0 {
		t.Fatalf("the sidecar NACKed: %v", nacks)
	}
	for i := range hits {
		hits[i].Store(0)
	}
	sc.logs.TakeAll()

	const total, workers = 10000, 8
	var ok, failed atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= total {
				res, err := c.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d ok, %d failed; upstream requests %d / %d / %d (flaky first)", ok.Load(), failed.Load(), hits[0].Load(), hits[1].Load(), hits[2].Load())
	if rate := float64(ok.Load()) / total; rate < 0.999 {
		t.Errorf("success rate %.4f, want >= 0.999", rate)
	}

	// The access log says why: retried requests, each ending on a healthy
	// host, and no request that ran out of retries.
	access := sc.logs.FilterMessage("access").All()
	retried, urx, endedOnFlaky := 0, 0, 0
	for _, e := range access {
		m := e.ContextMap()
		if m["status"] != int64(200) {
			t.Logf("failed request: status %v flags %v attempts %v host %v", m["status"], m["response_flags"], m["attempts"], m["upstream_host"])
		}
		if m["attempts"].(int64) > 1 {
			retried++
			if m["upstream_host"] == flaky {
				endedOnFlaky++
			}
		}
		if m["response_flags"] == "URX" {
			urx++
		}
	}
	t.Logf("access log: %d lines, %d retried, %d URX", len(access), retried, urx)
	if retried == 0 {
		t.Error("no access-log line shows a retry (attempts > 1)")
	}
	if endedOnFlaky > 0 {
		t.Errorf("%d retried requests ended on the flaky host although previous_hosts excludes it", endedOnFlaky)
	}
	if int64(urx) > failed.Load() {
		t.Errorf("%d URX lines for %d failed requests", urx, failed.Load())
	}

	// Outlier detection ejected the flaky host, so it got far less than
	// its third of the traffic.
	ejected := false
	for _, e := range sc.logs.FilterMessage("host ejected").All() {
		if e.ContextMap()["host"] == flaky {
			ejected = true
		}
	}
	if !ejected {
		t.Errorf("no \"host ejected\" log event for the flaky host %s", flaky)
	}
	if h0, rest := hits[0].Load(), hits[1].Load()+hits[2].Load(); h0*5 > rest {
		t.Errorf("the flaky host got %d requests against %d for the two others: not ejected for long", h0, rest)
	}
}
