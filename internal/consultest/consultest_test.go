package consultest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestBinaryIsThePinnedRelease(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	if !versionAtLeast(string(out), 1, 14) {
		t.Errorf("%s reports %q, want Consul 1.14 or newer", bin, strings.SplitN(string(out), "\n", 2)[0])
	}
}

func TestVersionAtLeast(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want bool
	}{
		{"pinned release", "Consul v1.14.11\nRevision", true},
		{"newer minor", "Consul v1.18.1", true},
		{"newer major", "Consul v2.0.0", true},
		{"older", "Consul v1.13.9", false},
		{"not consul", "Nomad v1.14.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := versionAtLeast(tt.out, 1, 14); got != tt.want {
				t.Errorf("versionAtLeast(%q) = %v, want %v", tt.out, got, tt.want)
			}
		})
	}
}

// writeEntry stores a config entry, which lives in the raft store (unlike
// agent registrations, which the agent replays from its data directory).
func writeEntry(t *testing.T, a *Agent) {
	t.Helper()
	e := &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "harness", Protocol: "http"}
	if ok, _, err := a.Client.ConfigEntries().Set(e, nil); err != nil || !ok {
		t.Fatalf("write config entry: ok=%v err=%v", ok, err)
	}
}

func entryExists(t *testing.T, a *Agent) bool {
	t.Helper()
	_, _, err := a.Client.ConfigEntries().Get(api.ServiceDefaults, "harness", nil)
	if err != nil && !strings.Contains(err.Error(), "404") {
		t.Fatalf("read config entry: %v", err)
	}
	return err == nil
}

// TestStopRestart: a stopped agent refuses connections; Restart brings it
// back on the same address with an empty -dev raft store; Stop twice is
// harmless.
func TestStopRestart(t *testing.T) {
	a := Start(t)
	addr := a.HTTPAddr
	writeEntry(t, a)
	a.Stop()
	a.Stop()
	if _, err := a.Client.Agent().Self(); err == nil {
		t.Fatal("agent still answers after Stop")
	}
	a.Restart()
	if a.HTTPAddr != addr {
		t.Errorf("address after restart = %s, want %s", a.HTTPAddr, addr)
	}
	if entryExists(t, a) {
		t.Errorf("-dev agent kept its raft state across a restart")
	}
}

// TestPersistentKeepsState: with Persistent() the raft store survives a
// restart; WithConfig reaches the agent's configuration.
func TestPersistentKeepsState(t *testing.T) {
	a := Start(t, Persistent(), WithConfig("node_meta", map[string]string{"rack": "r7"}))
	writeEntry(t, a)
	a.Restart()
	if !entryExists(t, a) {
		t.Errorf("persistent agent lost its config entry across a restart")
	}
	node, _, err := a.Client.Catalog().Node(a.NodeName, nil)
	if err != nil || node == nil || node.Node == nil {
		t.Fatalf("catalog node %s: %v", a.NodeName, err)
	}
	if got := node.Node.Meta["rack"]; got != "r7" {
		t.Errorf("node meta rack = %q, want r7 (from WithConfig)", got)
	}
}
