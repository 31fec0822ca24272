package main

import (
	"io"
	"testing"
)

// TestProbeTarget: `sidecar probe` asks, by default, the address the
// sidecar's admin endpoint listens on by default, and reads the same
// variable.
func TestProbeTarget(t *testing.T) {
	s, err := parseFlags([]string{"-proxy-id", "web-1-sidecar-proxy"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.AdminAddr != probeTarget.DefaultAddr {
		t.Errorf("probe default %s, -admin-addr default %s", probeTarget.DefaultAddr, s.AdminAddr)
	}
	env := func(k string) string {
		if k == probeTarget.AddrEnv {
			return "127.0.0.1:7"
		}
		return ""
	}
	if s, _ := parseFlags([]string{"-proxy-id", "x"}, env, io.Discard); s.AdminAddr != "127.0.0.1:7" {
		t.Errorf("the sidecar does not read its admin address from %s, the probe does", probeTarget.AddrEnv)
	}
}
