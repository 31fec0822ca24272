package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	dt "github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient/xdstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestParseFlags(t *testing.T) {
	defaults := settings{
		ProxyID: "web-1-sidecar-proxy", ControlPlane: "127.0.0.1:18000", AdminAddr: "127.0.0.1:19100",
		LogLevel: "info", LogFormat: "json", XDSProtocol: xdsclient.Delta, DrainTimeout: 10 * time.Second,
		AccessLog: accesslog.Options{SampleRate: 1},
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(settings) settings
		wantErr string
	}{
		{name: "defaults", args: []string{"-proxy-id", "web-1-sidecar-proxy"}, want: func(s settings) settings { return s }},
		{
			name: "environment",
			env: map[string]string{"CONSULATE_PROXY_ID": "web-1-sidecar-proxy", "CONSULATE_CONTROL_PLANE": "10.0.0.1:18000",
				"CONSULATE_XDS_PROTOCOL": "sotw", "CONSULATE_LOG_FORMAT": "console"},
			want: func(s settings) settings {
				s.ControlPlane, s.XDSProtocol, s.LogFormat = "10.0.0.1:18000", xdsclient.SotW, "console"
				return s
			},
		},
		{
			name: "flags win over environment",
			args: []string{"-proxy-id", "web-1-sidecar-proxy", "-admin-addr", "127.0.0.1:1", "-log-level", "debug"},
			env:  map[string]string{"CONSULATE_ADMIN_ADDR": "127.0.0.1:2", "CONSULATE_PROXY_ID": "other"},
			want: func(s settings) settings {
				s.AdminAddr, s.LogLevel = "127.0.0.1:1", "debug"
				return s
			},
		},
		{
			name: "access log",
			args: []string{"-proxy-id", "web-1-sidecar-proxy", "-access-log", "off", "-access-log-sample-rate", "0.25"},
			want: func(s settings) settings {
				s.AccessLog = accesslog.Options{Off: true, SampleRate: 0.25}
				return s
			},
		},
		{name: "bad access log", args: []string{"-proxy-id", "x", "-access-log", "maybe"}, wantErr: `-access-log "maybe"`},
		{name: "bad sample rate", args: []string{"-proxy-id", "x", "-access-log-sample-rate", "0"}, wantErr: "-access-log-sample-rate"},
		{name: "proxy id required", wantErr: "-proxy-id (CONSULATE_PROXY_ID) is required"},
		{name: "bad protocol", args: []string{"-proxy-id", "x", "-xds-protocol", "rest"}, wantErr: `xds protocol "rest"`},
		{name: "stray argument", args: []string{"-proxy-id", "x", "extra"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if diff := cmp.Diff(tc.want(defaults), got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("help", func(t *testing.T) {
		var out strings.Builder
		_, err := parseFlags([]string{"-h"}, func(string) string { return "" }, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("err = %v, want flag.ErrHelp", err)
		}
		for _, env := range []string{"CONSULATE_PROXY_ID", "CONSULATE_CONTROL_PLANE", "CONSULATE_ADMIN_ADDR", "CONSULATE_LOG_LEVEL", "CONSULATE_LOG_FORMAT", "CONSULATE_XDS_PROTOCOL"} {
			if !strings.Contains(out.String(), env) {
				t.Errorf("-h does not document %s", env)
			}
		}
	})
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

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestSidecarEndToEnd runs the whole binary's run function against the
// real go-control-plane server: not ready and no listener before the first
// config, then ready, proxying, and reporting through the admin endpoint.
func TestSidecarEndToEnd(t *testing.T) {
	for _, p := range []xdsclient.Protocol{xdsclient.Delta, xdsclient.SotW} {
		t.Run(string(p), func(t *testing.T) {
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "hello from "+r.URL.Path)
			}))
			defer upstream.Close()
			upHost, upPortStr, _ := net.SplitHostPort(upstream.Listener.Addr().String())
			upPort, _ := strconv.Atoi(upPortStr)

			cp := xdstest.Start(t, "127.0.0.1:0")
			ctx, cancel := context.WithCancel(t.Context())
			startedc := make(chan started, 1)
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, settings{
					ProxyID: "web-1-sidecar-proxy", ControlPlane: cp.Addr, AdminAddr: "127.0.0.1:0",
					XDSProtocol: p, DrainTimeout: time.Second,
				}, zaptest.NewLogger(t), func(s started) { startedc <- s })
			}()
			defer func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("run: %v", err)
					}
				case <-time.After(10 * time.Second):
					t.Errorf("run did not return after cancel")
				}
			}()
			var st started
			select {
			case st = <-startedc:
			case <-time.After(10 * time.Second):
				t.Fatal("sidecar did not start")
			}
			client := &http.Client{Timeout: 5 * time.Second}
			defer client.CloseIdleConnections()
			admin := "http://" + st.AdminAddr

			listenPort := freePort(t)
			if code, _ := get(t, client, admin+"/ready"); code != http.StatusServiceUnavailable {
				t.Fatalf("/ready before any config = %d, want 503", code)
			}
			if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(int(listenPort)), time.Second); err == nil {
				c.Close()
				t.Fatalf("listener open before the first config")
			}

			cp.Set("web-1-sidecar-proxy", xdstest.Snapshot(t, "v1", map[string][]types.Resource{
				resourcev3.ListenerType: {dt.HTTPListener("public", "127.0.0.1", listenPort, "local")},
				resourcev3.RouteType:    {dt.Route("local", "local_app")},
				resourcev3.ClusterType:  {dt.StaticCluster("local_app", dt.HostPort{Host: upHost, Port: uint32(upPort)})},
			}))
			xdstest.WaitFor(t, "/ready 200", 10*time.Second, func() bool {
				code, _ := get(t, client, admin+"/ready")
				return code == http.StatusOK
			})
			code, body := get(t, client, "http://127.0.0.1:"+strconv.Itoa(int(listenPort))+"/x")
			if code != http.StatusOK || body != "hello from /x" {
				t.Fatalf("proxied GET = %d %q", code, body)
			}
			if _, dump := get(t, client, admin+"/config_dump"); !strings.Contains(dump, `"name": "public"`) {
				t.Errorf("/config_dump lacks the listener:\n%s", dump)
			}
			wantHost := "local_app::" + upstream.Listener.Addr().String() + "::health_flags::healthy"
			if _, clusters := get(t, client, admin+"/clusters"); !strings.Contains(clusters, wantHost) {
				t.Errorf("/clusters lacks %q:\n%s", wantHost, clusters)
			}
			_, metrics := get(t, client, admin+"/metrics")
			for _, want := range []string{"consulate_sidecar_xds_connected 1", "consulate_sidecar_xds_ready 1", `consulate_sidecar_xds_updates_total{type="listener"}`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
		})
	}
}
