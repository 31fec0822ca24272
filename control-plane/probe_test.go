package main

import (
	"io"
	"testing"
)

// TestProbeTarget: `control-plane probe` asks, by default, the address the
// control plane's admin endpoint listens on by default, and reads the same
// variable.
func TestProbeTarget(t *testing.T) {
	c, err := parseFlags(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.AdminAddr != probeTarget.DefaultAddr {
		t.Errorf("probe default %s, -admin-addr default %s", probeTarget.DefaultAddr, c.AdminAddr)
	}
	env := func(k string) string {
		if k == probeTarget.AddrEnv {
			return "127.0.0.1:7"
		}
		return ""
	}
	if c, _ := parseFlags(nil, env, io.Discard); c.AdminAddr != "127.0.0.1:7" {
		t.Errorf("the control plane does not read its admin address from %s, the probe does", probeTarget.AddrEnv)
	}
}
