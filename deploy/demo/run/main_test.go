package main

import (
	"io"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr bool
	}{
		{"defaults", nil, false},
		{"bounded", []string{"-duration", "2s", "-requests", "10"}, false},
		{"zero requests", []string{"-requests", "0"}, true},
		{"negative duration", []string{"-duration", "-1s"}, true},
		{"stray argument", []string{"now"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
		})
	}
	o, err := parseFlags([]string{"-duration", "2s"}, io.Discard)
	if err != nil || o.duration != 2*time.Second {
		t.Errorf("duration = %v (%v), want 2s", o.duration, err)
	}
}

func TestOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]int
		want string
	}{
		{"none", nil, "none"},
		{"sorted", map[string]int{"503": 2, "200": 5, "502 UF": 1}, "5 × 200, 1 × 502 UF, 2 × 503"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := outcomes(tc.in); got != tc.want {
				t.Errorf("outcomes = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestTopology: every upstream a member declares exists, and ports are
// distinct once assigned.
func TestTopology(t *testing.T) {
	ms := topology()
	if err := assignPorts(ms); err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, m := range ms {
		services[m.Service] = true
	}
	seen := map[int]string{}
	for _, m := range ms {
		ports := []int{m.AppPort, m.SidecarPort}
		for _, u := range m.Upstreams {
			if !services[u.Service] {
				t.Errorf("%s: upstream %s is not in the topology", m.ID, u.Service)
			}
			ports = append(ports, u.LocalBindPort)
		}
		for _, p := range ports {
			if prev, ok := seen[p]; ok || p == 0 {
				t.Errorf("%s: port %d already used by %s", m.ID, p, prev)
			}
			seen[p] = m.ID
		}
	}
}

// TestSplit: the split's weights sum to 100 and each subset's filter
// selects an api instance of the topology.
func TestSplit(t *testing.T) {
	versions := map[string]bool{}
	for _, m := range topology() {
		if m.Service == "api" {
			versions[m.Version] = true
		}
	}
	var sum float32
	for _, s := range apiSplit {
		sum += s.Weight
		if !versions[s.Subset] {
			t.Errorf("subset %s: no api instance has version %s", s.Subset, s.Subset)
		}
	}
	if sum != 100 {
		t.Errorf("split weights sum to %v, want 100", sum)
	}
}
