package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
	"github.com/seed-a778acb4/consulate/control-plane/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeStatus struct {
	ready    atomic.Bool
	proxies  []server.ProxyStatus
	entries  []server.ConfigEntryError
	warnings []server.ProxylessWarning
}

func (f *fakeStatus) Ready() bool                                  { return f.ready.Load() }
func (f *fakeStatus) Status() []server.ProxyStatus                 { return f.proxies }
func (f *fakeStatus) ConfigEntryErrors() []server.ConfigEntryError { return f.entries }
func (f *fakeStatus) ProxylessWarnings() []server.ProxylessWarning { return f.warnings }

func TestHandler(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &fakeStatus{proxies: []server.ProxyStatus{{NodeID: "web-1-sidecar-proxy", Kind: server.KindSidecar,
		Protocol: server.ProtocolDelta, Peer: "127.0.0.1:5555", StreamID: 3, ConnectedAt: at,
		Types: map[string]server.TypeStatus{"cds": {LastSentVersion: "v2", LastACKedVersion: "v1",
			LastNACK: &server.NACK{Version: "v2", Nonce: "4", Error: "bad", Resources: []string{"db"}, At: at}}},
		TranslationError: &server.TranslationError{Kind: "service-splitter", Name: "api", Field: "Splits[1].ServiceSubset",
			Error: "no subset", ConsulIndex: 7, Since: at}}},
		entries:  []server.ConfigEntryError{{Kind: "service-router", Name: "api", Field: "Meta[consulate_nope]", Error: "unknown key"}},
		warnings: []server.ProxylessWarning{{Resource: "routes api", Entry: "service-router/api", Message: "timeout ignored"}},
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	m.NACKs.WithLabelValues("Cluster").Inc()
	srv := httptest.NewServer(Handler(st, reg))
	defer srv.Close()

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("healthz", func(t *testing.T) {
		if code, _ := get("/healthz"); code != 200 {
			t.Errorf("code %d", code)
		}
	})
	t.Run("readyz before and after", func(t *testing.T) {
		if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
			t.Errorf("before: code %d, want 503", code)
		}
		st.ready.Store(true)
		if code, _ := get("/readyz"); code != 200 {
			t.Errorf("after: code %d, want 200", code)
		}
	})
	t.Run("status", func(t *testing.T) {
		code, body := get("/status")
		if code != 200 {
			t.Fatalf("code %d", code)
		}
		var got Report
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		want := Report{Ready: true, ConfigEntryErrors: st.entries, ProxylessWarnings: st.warnings, Proxies: st.proxies}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
		for _, key := range []string{`"last_nack"`, `"last_acked_version": "v1"`, `"config_entry_errors"`,
			`"proxyless_warnings"`, `"translation_error"`, `"field": "Splits[1].ServiceSubset"`} {
			if !strings.Contains(body, key) {
				t.Errorf("status JSON lacks %s:\n%s", key, body)
			}
		}
	})
	t.Run("metrics", func(t *testing.T) {
		_, body := get("/metrics")
		for _, want := range []string{`consulate_cp_nacks_total{type="Cluster"} 1`, "consulate_cp_connected_proxies 0",
			"consulate_cp_rebuild_duration_seconds_bucket", "consulate_cp_push_duration_seconds_bucket",
			"consulate_cp_config_entry_errors 0", "consulate_cp_translation_failing_proxies 0"} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
	t.Run("pprof heap", func(t *testing.T) {
		code, body := get("/debug/pprof/heap?debug=1")
		if code != 200 || !strings.Contains(body, "heap profile") {
			t.Errorf("code %d, body starts %.40q", code, body)
		}
	})
}
