package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unit is a systemd unit file: section → key → values (keys repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// hardening is what every unit must set, with the value it must have.
var hardening = map[string]string{
	"DynamicUser": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "",
	"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
	"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
	"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
	"RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
	"SystemCallArchitectures": "native",
}

// TestSystemdUnits: each unit starts a binary we build, sets only
// environment variables that binary reads, carries the hardening options,
// and — where systemd-analyze exists — passes `systemd-analyze verify`
// with its ExecStart pointed at the freshly built binary.
func TestSystemdUnits(t *testing.T) {
	envs := map[string]map[string]string{}
	for _, tc := range []struct {
		name, file, bin, instance string
	}{
		{"control plane", "systemd/consulate-control-plane.service", "consulate-control-plane", ""},
		{"sidecar template", "systemd/consulate-sidecar@.service", "consulate-sidecar", "web-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := parseUnit(t, tc.file)
			svc := u["Service"]
			if svc == nil || u["Unit"] == nil || u["Install"] == nil {
				t.Fatalf("want [Unit], [Service] and [Install] sections")
			}
			exec := strings.Fields(svc["ExecStart"][0])
			if got, want := exec[0], "/usr/local/bin/"+tc.bin; got != want {
				t.Errorf("ExecStart runs %s, want %s", got, want)
			}
			checkArgs(t, tc.bin, exec[1:])
			// Start-up waits for readiness through the probe subcommand.
			post := svc["ExecStartPost"]
			if len(post) != 1 {
				t.Errorf("ExecStartPost %q, want one: `%s probe -wait ...`", post, tc.bin)
			} else {
				args := checkProbeCommand(t, tc.bin, "", strings.Fields(strings.TrimPrefix(post[0], "-")))
				if argValue(args, "wait") == "" {
					t.Errorf("ExecStartPost %q does not wait (-wait) for readiness", post[0])
				}
			}
			envs[tc.bin] = map[string]string{}
			for _, e := range svc["Environment"] {
				k, v, _ := strings.Cut(e, "=")
				checkEnv(t, tc.bin, k)
				envs[tc.bin][k] = v
			}
			for k, want := range hardening {
				if got := svc[k]; len(got) == 0 || got[0] != want {
					t.Errorf("[Service] %s = %q, want %q", k, got, want)
				}
			}
			verify(t, tc.file, tc.bin, tc.instance)
		})
	}
	// The sidecar's default control plane is the control plane's xDS port.
	if cp, sc := portOf(envs["consulate-control-plane"]["CONSULATE_XDS_ADDR"]), portOf(envs["consulate-sidecar"]["CONSULATE_CONTROL_PLANE"]); cp == "" || cp != sc {
		t.Errorf("control plane xDS port %q, sidecar's control plane port %q: want the same", cp, sc)
	}
	if got := envs["consulate-sidecar"]["CONSULATE_PROXY_ID"]; got != "%i-sidecar-proxy" {
		t.Errorf("sidecar@ proxy id %q, want %%i-sidecar-proxy (Consul's <service ID>-sidecar-proxy)", got)
	}
}

// verify runs `systemd-analyze verify` on a copy of the unit whose
// ExecStart is the built binary (verify checks that it is executable).
func verify(t *testing.T, file, bin, instance string) {
	t.Helper()
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Logf("systemd-analyze is not on this machine: only the checks above ran for %s", file)
		return
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(readFile(t, file), "/usr/local/bin/"+bin, binaries[bin].path)
	name := filepath.Base(file)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	target := name
	if instance != "" {
		target = strings.Replace(name, "@", "@"+instance, 1)
	}
	cmd := exec.Command(sa, "verify", "./"+target)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify %s: %v\n%s", target, err, out)
	}
}
