package probe

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// admin serves path → status, as the programs' admin endpoints do.
func admin(t *testing.T, statuses map[string]int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, ok := statuses[r.URL.Path]
		if !ok {
			code = http.StatusNotFound
		}
		w.WriteHeader(code)
		w.Write([]byte("waiting for clusters"))
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

var (
	sidecar      = Target{Program: "sidecar", AddrEnv: "CONSULATE_ADMIN_ADDR", DefaultAddr: "127.0.0.1:1", Ready: "/ready"}
	controlPlane = Target{Program: "control-plane", AddrEnv: "CONSULATE_ADMIN_ADDR", DefaultAddr: "127.0.0.1:1", Ready: "/readyz", Live: "/healthz"}
)

func TestProbe(t *testing.T) {
	ready := admin(t, map[string]int{"/ready": 200, "/readyz": 200, "/healthz": 200})
	notReady := admin(t, map[string]int{"/ready": 503, "/readyz": 503, "/healthz": 200})
	dead := admin(t, map[string]int{"/readyz": 200, "/healthz": 500})
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	_, readyPort, _ := net.SplitHostPort(ready)

	for _, tc := range []struct {
		name   string
		target Target
		args   []string
		env    string
		want   int
		stderr string
	}{
		{"ready", sidecar, []string{"-admin-addr", ready}, "", OK, ""},
		{"not ready", sidecar, []string{"-admin-addr", notReady}, "", Failed, "/ready: 503 waiting for clusters"},
		{"not listening", sidecar, []string{"-admin-addr", closed}, "", Failed, "connection refused"},
		{"address from the environment", sidecar, nil, ready, OK, ""},
		{"flag wins over the environment", sidecar, []string{"-admin-addr", notReady}, ready, Failed, "503"},
		{"default address", sidecar, nil, "", Failed, "127.0.0.1:1/ready"},
		{"unspecified host dials loopback", sidecar, []string{"-admin-addr=0.0.0.0:" + readyPort}, "", OK, ""},
		{"empty host dials loopback", sidecar, []string{"-admin-addr=:" + readyPort}, "", OK, ""},
		{"live: any answer", sidecar, []string{"-live", "-admin-addr", notReady}, "", OK, ""},
		{"live: no answer", sidecar, []string{"-live", "-admin-addr", closed}, "", Failed, "connection refused"},
		{"live path", controlPlane, []string{"-live", "-admin-addr", notReady}, "", OK, ""},
		{"live path failing", controlPlane, []string{"-live", "-admin-addr", dead}, "", Failed, "/healthz: 500"},
		{"ready path", controlPlane, []string{"-admin-addr", notReady}, "", Failed, "/readyz: 503"},
		{"help", sidecar, []string{"-h"}, "", OK, "Usage: sidecar probe"},
		{"unknown flag", sidecar, []string{"-nope"}, "", Usage, "flag provided but not defined"},
		{"extra argument", sidecar, []string{"ready"}, "", Usage, "unexpected arguments"},
		{"bad timeout", sidecar, []string{"-timeout", "0s"}, "", Usage, "positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			getenv := func(k string) string {
				if k == "CONSULATE_ADMIN_ADDR" {
					return tc.env
				}
				return ""
			}
			got := Main(tc.args, tc.target, getenv, &stderr)
			if got != tc.want {
				t.Errorf("exit %d, want %d; stderr %q", got, tc.want, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tc.stderr)
			}
			if tc.want == OK && tc.stderr == "" && stderr.Len() != 0 {
				t.Errorf("stderr %q, want nothing", stderr.String())
			}
		})
	}
}

// TestWait: with -wait the probe asks again until the answer is OK, and
// gives up, with the last reason, once the time is up.
func TestWait(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if asked.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("no clusters yet"))
			return
		}
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	none := func(string) string { return "" }

	var stderr bytes.Buffer
	if got := Main([]string{"-admin-addr", addr}, sidecar, none, &stderr); got != Failed {
		t.Errorf("without -wait: exit %d, want %d (asked once: not ready yet)", got, Failed)
	}
	stderr.Reset()
	if got := Main([]string{"-admin-addr", addr, "-wait", "20s"}, sidecar, none, &stderr); got != OK || asked.Load() != 3 {
		t.Errorf("-wait 20s: exit %d after %d questions, want %d after 3; stderr %q", got, asked.Load(), OK, stderr.String())
	}

	notReady := admin(t, map[string]int{"/ready": 503})
	stderr.Reset()
	start := time.Now()
	if got := Main([]string{"-admin-addr", notReady, "-wait", "600ms"}, sidecar, none, &stderr); got != Failed {
		t.Errorf("-wait 600ms, never ready: exit %d, want %d", got, Failed)
	}
	if took := time.Since(start); took < 300*time.Millisecond || took > 10*time.Second {
		t.Errorf("-wait 600ms took %s", took)
	}
	if !strings.Contains(stderr.String(), "503 waiting for clusters") {
		t.Errorf("stderr %q, want the last answer", stderr.String())
	}
	if got := Main([]string{"-wait", "-1s"}, sidecar, none, &stderr); got != Usage {
		t.Errorf("-wait -1s: exit %d, want %d", got, Usage)
	}
}
