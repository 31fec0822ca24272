package proxy

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestRetryOverflow: with max_retries 1, a retry in flight leaves no room
// for another; Envoy then returns the last attempt's response, flags UO
// (upstream_rq_retry_overflow), and does not retry.
func TestRetryOverflow(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	held := make(chan struct{}, 1)
	up, hits := counted(t, false, func(n int32, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/holder" && n > 1 {
			held <- struct{}{}
			<-release // the retry of /holder keeps the breaker
		}
		w.WriteHeader(503)
	})
	cl := oneHost("c", addrOf(up), config.HTTP1)
	cl.CircuitBreakers = config.CircuitBreakers{MaxRetries: 1}
	px := startProxy(t, catchAll(retryRoute("c", fastPolicy(config.Retry5xx), 5*time.Second)), map[string]*config.Cluster{"c": cl}, nil)
	c := client(t, false)
	done := make(chan int, 1)
	go func() {
		res, err := c.Do(newReq(t, "GET", px.url("/holder"), ""))
		if err != nil {
			done <- 0
			return
		}
		res.Body.Close()
		done <- res.StatusCode
	}()
	select {
	case <-held:
	case <-t.Context().Done():
		t.Fatal("the retry of /holder never reached the upstream")
	}
	before := hits.Load()
	res, _ := get(t, c, newReq(t, "GET", px.url("/other"), ""))
	if res.StatusCode != 503 || hits.Load()-before != 1 {
		t.Errorf("second request: %d after %d upstream requests, want the upstream's 503 after 1 (no retry)", res.StatusCode, hits.Load()-before)
	}
	if res.Header.Get("X-Envoy-Overloaded") != "" {
		t.Error("a retry overflow returns the upstream's response; x-envoy-overloaded is for requests the proxy refused")
	}
	if e := px.logFor(t, "/other"); e["response_flags"] != "UO" || e["attempts"] != int64(1) {
		t.Errorf("access log flags %v attempts %v, want UO 1", e["response_flags"], e["attempts"])
	}
	if got := counterValue(t, px, "consulate_sidecar_upstream_retry_outcomes_total", "cluster", "c", "outcome", "overflow"); got != 1 {
		t.Errorf("retry outcome overflow = %v, want 1", got)
	}
	free()
	if code := <-done; code != 503 {
		t.Errorf("/holder: %d, want 503 after its retry", code)
	}
	if e := px.logFor(t, "/holder"); e["response_flags"] != "URX" || e["attempts"] != int64(2) {
		t.Errorf("/holder access log flags %v attempts %v, want URX 2", e["response_flags"], e["attempts"])
	}
}

// TestConnectionOverflow: at max_connections a request that needs a new
// connection waits as pending; when none frees up in time the pool
// refuses it and the proxy answers 503 UO with x-envoy-overloaded.
func TestConnectionOverflow(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	held := make(chan struct{}, 1)
	up, _ := counted(t, false, func(_ int32, w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			held <- struct{}{}
			<-release
		}
		w.Write([]byte("ok"))
	})
	cl := oneHost("c", addrOf(up), config.HTTP1)
	cl.ConnectTimeout = 200 * time.Millisecond
	cl.CircuitBreakers = config.CircuitBreakers{MaxConnections: 1}
	px := startProxy(t, catchAll(toCluster("c")), map[string]*config.Cluster{"c": cl}, nil)
	c := client(t, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if res, err := c.Do(newReq(t, "GET", px.url("/hold"), "")); err == nil {
			res.Body.Close()
		}
	}()
	<-held
	res, body := get(t, client(t, false), newReq(t, "GET", px.url("/more"), ""))
	if res.StatusCode != 503 || res.Header.Get("X-Envoy-Overloaded") != "true" {
		t.Errorf("got %d %q overloaded=%q, want 503 with x-envoy-overloaded: true", res.StatusCode, body, res.Header.Get("X-Envoy-Overloaded"))
	}
	if e := px.logFor(t, "/more"); e["response_flags"] != "UO" {
		t.Errorf("flags %v, want UO", e["response_flags"])
	}
	free()
	<-done
}
