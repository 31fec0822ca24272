package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/internal/freeport"
)

// probeCommand is one health-check command a deployment file runs.
type probeCommand struct {
	where   string
	command []string
	// env is the environment of the container it runs in (the image's
	// ENV), for a command that names no -admin-addr.
	env  []string
	live bool
}

// sidecarProbes are the sidecar health checks of the Kubernetes workload,
// the Nomad job and the Dockerfile.
func sidecarProbes(t *testing.T) []probeCommand {
	t.Helper()
	var out []probeCommand
	for _, o := range parseManifests(t, "kubernetes/workload.yaml") {
		for _, c := range o.Spec.Template.Spec.Containers {
			if binaryOf(c.Image) != "consulate-sidecar" {
				continue
			}
			for kind, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				if p == nil || p.Exec == nil {
					t.Errorf("workload.yaml: the sidecar's %s probe is not an exec probe of `consulate-sidecar probe`", kind)
					continue
				}
				out = append(out, probeCommand{where: "workload.yaml " + kind, command: p.Exec.Command, live: kind == "liveness"})
			}
		}
	}
	nomad := readFile(t, "nomad/consulate.nomad.hcl")
	m := regexp.MustCompile(`(?s)type\s*=\s*"script"\s*task\s*=\s*"([^"]+)"\s*command\s*=\s*"([^"]+)"\s*args\s*=\s*\[([^\]]*)\]`).FindStringSubmatch(nomad)
	if m == nil {
		t.Errorf("consulate.nomad.hcl: no script check running the sidecar's probe")
	} else {
		if m[1] != "connect-proxy-web" {
			t.Errorf("consulate.nomad.hcl: the script check runs in task %q, want Nomad's sidecar task connect-proxy-web", m[1])
		}
		cmd := []string{m[2]}
		for _, a := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[3], -1) {
			cmd = append(cmd, a[1])
		}
		out = append(out, probeCommand{where: "consulate.nomad.hcl", command: cmd})
	}
	out = append(out, dockerHealthcheck(t, "sidecar"), systemdProbe(t, "systemd/consulate-sidecar@.service"))
	return out
}

// systemdProbe is the ExecStartPost probe of a unit, with the unit's
// CONSULATE_* Environment.
func systemdProbe(t *testing.T, file string) probeCommand {
	t.Helper()
	svc := parseUnit(t, file)["Service"]
	pc := probeCommand{where: file}
	if len(svc["ExecStartPost"]) == 1 {
		pc.command = strings.Fields(strings.TrimPrefix(svc["ExecStartPost"][0], "-"))
	} else {
		t.Errorf("%s: ExecStartPost %q, want one probe command", file, svc["ExecStartPost"])
	}
	for _, e := range svc["Environment"] {
		if strings.HasPrefix(e, "CONSULATE_") {
			pc.env = append(pc.env, e)
		}
	}
	return pc
}

// dockerHealthcheck is the HEALTHCHECK of the Dockerfile's stage, with
// the stage's CONSULATE_* ENV.
func dockerHealthcheck(t *testing.T, stage string) probeCommand {
	t.Helper()
	text := readFile(t, "docker/Dockerfile")
	for _, st := range regexp.MustCompile(`(?m)^FROM `).Split(text, -1)[1:] {
		header, _, _ := strings.Cut(st, "\n")
		if !strings.HasSuffix(strings.TrimSpace(header), " AS "+stage) {
			continue
		}
		pc := probeCommand{where: "Dockerfile " + stage}
		m := regexp.MustCompile(`HEALTHCHECK [^\[]*CMD (\[[^\]]*\])`).FindStringSubmatch(st)
		if m == nil {
			t.Errorf("Dockerfile: stage %s has no HEALTHCHECK CMD [...]", stage)
			return pc
		}
		for _, a := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
			pc.command = append(pc.command, a[1])
		}
		for _, e := range regexp.MustCompile(`(CONSULATE_[A-Z_]+=\S+)`).FindAllString(st, -1) {
			pc.env = append(pc.env, e)
		}
		return pc
	}
	t.Fatalf("Dockerfile: no stage %s", stage)
	return probeCommand{}
}

// TestProbeCommands: every health check and start-up wait the
// deployment files run for the sidecar and the control plane is
// `<binary> probe` with flags the probe has, and does what it says
// against the real binary: with no
// control plane (sidecar) or no Consul (control plane) the process is
// alive but not ready, so a readiness probe exits 1 and a liveness probe
// 0; with the process gone, both exit 1.
func TestProbeCommands(t *testing.T) {
	for _, tc := range []struct {
		bin    string
		probes []probeCommand
		start  func(adminAddr, deadAddr string) []string
	}{
		{"consulate-sidecar", sidecarProbes(t), func(admin, dead string) []string {
			return []string{"-proxy-id", "web-1-sidecar-proxy", "-control-plane", dead, "-admin-addr", admin}
		}},
		{"consulate-control-plane", []probeCommand{dockerHealthcheck(t, "control-plane"), systemdProbe(t, "systemd/consulate-control-plane.service")}, func(admin, dead string) []string {
			ports, err := freeport.Take(1)
			if err != nil {
				t.Fatal(err)
			}
			return []string{"-consul-addr", dead, "-xds-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]), "-admin-addr", admin}
		}},
	} {
		t.Run(tc.bin, func(t *testing.T) {
			ports, err := freeport.Take(2)
			if err != nil {
				t.Fatal(err)
			}
			admin, dead := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
			for _, p := range tc.probes {
				checkProbeCommand(t, tc.bin, "", p.command)
			}
			if t.Failed() {
				return
			}
			cmd := exec.Command(binaries[tc.bin].path, tc.start(admin, dead)...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			var log strings.Builder
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			stop := func() {
				_ = cmd.Process.Kill()
				<-exited
			}
			defer stop()
			waitAnswers(t, "http://"+admin+"/", exited)

			for _, p := range tc.probes {
				want := 1
				if p.live || slices.Contains(p.command, "-live") {
					want = 0
				}
				if code, out := runProbe(t, tc.bin, p, admin); code != want {
					t.Errorf("%s: %q exited %d with the %s alive and not ready, want %d: %s", p.where, p.command, code, tc.bin, want, out)
				}
			}
			stop()
			for _, p := range tc.probes {
				if code, out := runProbe(t, tc.bin, p, admin); code != 1 {
					t.Errorf("%s: %q exited %d with the %s gone, want 1: %s", p.where, p.command, code, tc.bin, out)
				}
			}
		})
	}
}

// runProbe runs a probe command with the built binary in place of the
// installed one and admin as its admin address (its -admin-addr, or
// CONSULATE_ADMIN_ADDR with the file's host when it names none), a
// -wait shortened to 1 s, and returns its exit code and output.
func runProbe(t *testing.T, bin string, p probeCommand, admin string) (int, string) {
	t.Helper()
	args := append([]string(nil), p.command[1:]...)
	env := []string{"PATH=" + os.Getenv("PATH")}
	_, port, _ := net.SplitHostPort(admin)
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "-admin-addr="):
			args[i] = "-admin-addr=" + admin
		case strings.HasPrefix(a, "-wait="):
			args[i] = "-wait=1s" // the file's wait, shortened for the test
		}
	}
	for _, e := range p.env {
		if v, ok := strings.CutPrefix(e, "CONSULATE_ADMIN_ADDR="); ok {
			host, _, _ := net.SplitHostPort(v)
			e = "CONSULATE_ADMIN_ADDR=" + net.JoinHostPort(host, port)
		}
		env = append(env, e)
	}
	cmd := exec.Command(binaries[bin].path, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

// waitAnswers waits until url answers HTTP at all.
func waitAnswers(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("the process exited before its admin endpoint answered")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 20 s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
