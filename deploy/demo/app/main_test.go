package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    options
		wantErr bool
	}{
		{"defaults", nil, options{name: "app", version: "v1", instance: "app", listen: "127.0.0.1:8080"}, false},
		{"all", []string{"-name", "api", "-version", "v2", "-instance", "api-v2", "-listen", "127.0.0.1:1", "-upstream", "http://127.0.0.1:2", "-failure-rate", "0.25"},
			options{name: "api", version: "v2", instance: "api-v2", listen: "127.0.0.1:1", upstream: "http://127.0.0.1:2", failureRate: 0.25}, false},
		{"rate above one", []string{"-failure-rate", "1.5"}, options{}, true},
		{"negative rate", []string{"-failure-rate", "-0.1"}, options{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil {
				if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(options{})); d != "" {
					t.Errorf("options (-want +got):\n%s", d)
				}
			}
		})
	}
}

// TestChain: an app answers with its identity nested around its
// upstream's reply, fails as configured, and maps upstream failures to 502.
func TestChain(t *testing.T) {
	leaf := httptest.NewServer(&app{o: options{name: "payments", version: "v1", instance: "payments-1"}, client: http.DefaultClient})
	defer leaf.Close()
	broken := httptest.NewServer(&app{o: options{name: "payments", version: "v1", instance: "payments-3", failureRate: 1}, client: http.DefaultClient})
	defer broken.Close()

	for _, tc := range []struct {
		name     string
		o        options
		wantCode int
		want     reply
	}{
		{"calls upstream", options{name: "api", version: "v2", instance: "api-v2", upstream: leaf.URL}, http.StatusOK,
			reply{Service: "api", Version: "v2", Instance: "api-v2", Upstream: json.RawMessage(`{"service":"payments","version":"v1","instance":"payments-1"}`)}},
		{"upstream fails", options{name: "api", version: "v1", instance: "api-v1", upstream: broken.URL}, http.StatusBadGateway,
			reply{Service: "api", Version: "v1", Instance: "api-v1", Error: `upstream answered 503: {"service":"payments","version":"v1","instance":"payments-3","error":"injected failure"}` + "\n"}},
		{"always fails", options{name: "x", version: "v1", instance: "x-1", failureRate: 1}, http.StatusServiceUnavailable,
			reply{Service: "x", Version: "v1", Instance: "x-1", Error: "injected failure"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(&app{o: tc.o, client: http.DefaultClient})
			defer srv.Close()
			resp, err := http.Get(srv.URL + "/checkout")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.wantCode)
			}
			var got reply
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			if tc.want.Upstream != nil {
				var compact map[string]any
				_ = json.Unmarshal(got.Upstream, &compact)
				got.Upstream, _ = json.Marshal(compact)
				var w map[string]any
				_ = json.Unmarshal(tc.want.Upstream, &w)
				tc.want.Upstream, _ = json.Marshal(w)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("reply (-want +got):\n%s", d)
			}
		})
	}
}
