package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/control-plane/admin"
	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// consulCLI runs the real `consul` binary against a test agent, as a user
// managing the mesh would.
type consulCLI struct {
	bin, httpAddr, dir string
}

func newConsulCLI(t *testing.T, httpAddr, dir string) consulCLI {
	t.Helper()
	bin, err := consultest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return consulCLI{bin: bin, httpAddr: httpAddr, dir: dir}
}

// run runs `consul <args>` with CONSUL_HTTP_ADDR set to the agent and
// fails the test if it fails.
func (c consulCLI) run(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	// exec keeps the last value of a duplicated key: these win over the
	// environment's.
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR=http://"+c.httpAddr, "CONSUL_HTTP_TOKEN=")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("consul %q: %v\n%s", args, err, out)
	}
	t.Logf("consul %s: %s (%s)", strings.Join(args, " "), strings.TrimSpace(string(out)), time.Since(start).Round(time.Millisecond))
}

// write saves hcl as <name>.hcl and runs `consul config write` on it; it
// returns when the command returned.
func (c consulCLI) write(t *testing.T, name, hcl string) time.Time {
	t.Helper()
	path := filepath.Join(c.dir, name+".hcl")
	if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	c.run(t, "config", "write", path)
	return time.Now()
}

// delete runs `consul config delete -kind <kind> -name <name>`.
func (c consulCLI) delete(t *testing.T, kind, name string) time.Time {
	t.Helper()
	c.run(t, "config", "delete", "-kind", kind, "-name", name)
	return time.Now()
}

// addVersion is addMember for an instance of service whose Meta and tag
// say version, and whose app answers with version.
func (f *fixture) addVersion(t *testing.T, service, id, version string) *member {
	t.Helper()
	ports, err := launch.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{App: startApp(t, version)}
	m.Instance = launch.Instance{Service: service, ID: id, Version: version, AppPort: m.App.Port, SidecarPort: ports[0]}
	if err := launch.Register(f.consul.Client, m.Instance); err != nil {
		t.Fatal(err)
	}
	f.startSidecar(t, t, m, 0)
	return m
}

// probe sends GETs through a client sidecar's outbound listener and
// remembers every answer that was not a 200.
type probe struct {
	base     string
	client   *http.Client
	failures []string
}

func newProbe(t *testing.T, base string) *probe {
	p := &probe{base: base, client: &http.Client{Timeout: 5 * time.Second}}
	t.Cleanup(p.client.CloseIdleConnections)
	return p
}

// get returns the body of a 200 answer to GET base+path, or false.
func (p *probe) get(t *testing.T, path string) (string, bool) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, p.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		p.fail(fmt.Sprintf("/%s: %v", path, err))
		return "", false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		p.fail(fmt.Sprintf("/%s: %d %.100s", path, resp.StatusCode, b))
		return "", false
	}
	return string(b), true
}

func (p *probe) fail(s string) {
	p.failures = append(p.failures, time.Now().Format("15:04:05.000")+" "+s)
}

// tally sends n GETs to path and counts the answers by body.
func (p *probe) tally(t *testing.T, path string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		if body, ok := p.get(t, path); ok {
			got[body]++
		} else {
			got["failed"]++
		}
	}
	return got
}

// probePace spaces the requests of a wait: a poll, not a busy loop on a
// shared machine.
const probePace = 5 * time.Millisecond

// waitFor sends GETs to path until run consecutive answers are want,
// within the deadline, and logs how long after since (when the command
// that made the change returned) the change showed. With run 1 that is
// the first answer showing the new behaviour. A longer run is for a
// change that one answer cannot tell from the old behaviour ("only v1"
// where v1 was one of two): the log then gives the last old answer (the
// change came after it) and the start of the run.
func (p *probe) waitFor(t *testing.T, what string, since time.Time, path, want string, run int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(probePace)
	defer tick.Stop()
	var first, lastOther time.Time
	consecutive, sent := 0, 0
	seen := map[string]int{}
	for {
		body, ok := p.get(t, path)
		now := time.Now()
		sent++
		if !ok {
			body = "failed"
		}
		seen[body]++
		switch {
		case body != want:
			consecutive, lastOther = 0, now
		case consecutive == 0:
			first, consecutive = now, 1
		default:
			consecutive++
		}
		if consecutive >= run {
			ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
			if run == 1 {
				t.Logf("%s applied in %s (first %q answer, %d requests sent)", what, ms(first.Sub(since)), want, sent)
				return
			}
			before := "no other answer"
			if !lastOther.IsZero() {
				before = "the last other answer at +" + ms(lastOther.Sub(since)).String()
			}
			t.Logf("%s applied in %s (%d %q answers in a row from then on, %s; %d requests sent: %v)",
				what, ms(first.Sub(since)), run, want, before, sent, seen)
			return
		}
		if now.After(deadline) {
			t.Fatalf("%s: no run of %d answers %q to /%s within %s (%d sent: %v); failures %q", what, run, want, path, within, sent, seen, p.failures)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// waitClusterGone waits until m's sidecar has no cluster whose name
// starts with prefix and logs how long after since that was: for a change
// that no single answer shows (the end of a 90/10 split), the moment the
// sidecar applied it. The sidecar applies a complete config at once, so
// the routes that used the cluster went with it.
func waitClusterGone(t *testing.T, m *member, what string, since time.Time, prefix string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(probePace)
	defer tick.Stop()
	for {
		cs, err := launch.Clusters(m.Sidecar.AdminAddr)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		gone := true
		for _, c := range cs {
			if strings.HasPrefix(c.Name, prefix) {
				gone = false
			}
		}
		if gone {
			t.Logf("%s applied in %s (%s* left %s's clusters)", what, now.Sub(since).Round(time.Millisecond), prefix, m.ProxyID())
			return
		}
		if now.After(deadline) {
			t.Fatalf("%s: %s still has a %s* cluster %s after the change", what, m.ProxyID(), prefix, within)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-tick.C:
		}
	}
}

// checkStatus fails the test if the control plane's /status lists a
// config entry it cannot apply, a proxy whose translation failed, or a
// NACK (a stream keeps its last one): after a change, what the sidecars
// run is what the entries say, not a last good config.
func checkStatus(t *testing.T, cp *launch.ControlPlane, after string) {
	t.Helper()
	code, body, err := func() (int, []byte, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+cp.AdminAddr+"/status", nil)
		if err != nil {
			return 0, nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}()
	if err != nil || code != http.StatusOK {
		t.Fatalf("after %s: control plane /status: %d %v", after, code, err)
	}
	var rep admin.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("after %s: /status: %v", after, err)
	}
	if len(rep.ConfigEntryErrors) != 0 {
		t.Errorf("after %s: /status lists config entry errors: %+v", after, rep.ConfigEntryErrors)
	}
	for _, p := range rep.Proxies {
		if p.TranslationError != nil {
			t.Errorf("after %s: /status: %s translation error: %+v", after, p.NodeID, *p.TranslationError)
		}
		for typ, ts := range p.Types {
			if ts.LastNACK != nil {
				t.Errorf("after %s: /status: %s NACKed %s: %+v", after, p.NodeID, typ, *ts.LastNACK)
			}
		}
	}
}
