// Package consultest runs a real Consul agent for integration tests.
//
// Start launches `consul agent` on free loopback ports (HTTP, DNS, serf LAN
// and WAN, server RPC, gRPC and gRPC-TLS, so that several agents can run on
// one host at once) with its data directory under t.TempDir(), waits until it
// has elected a leader, and stops it at cleanup. There is no mock: a test that
// needs Consul and cannot find the binary fails, it never skips.
//
// The binary is found, in order, at $CONSUL_BIN, at the path `make consul`
// caches (<user cache dir>/consulate/consul-1.14.11, i.e. ~/.cache/consulate
// unless XDG_CACHE_HOME says otherwise), at <repo>/.cache/consul-1.14.11, or
// as `consul` on PATH when that one reports version 1.14 or newer.
package consultest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/internal/freeport"
)

// Version is the Consul release `make consul` builds.
const Version = "1.14.11"

// Binary returns the path of the Consul agent binary to use.
func Binary() (string, error) {
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("CONSUL_BIN=%s: %w", p, err)
		}
		return p, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		p := filepath.Join(dir, "consulate", "consul-"+Version)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, ".cache", "consul-"+Version)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		out, err := exec.Command(p, "version").Output()
		if err == nil && versionAtLeast(string(out), 1, 14) {
			return p, nil
		}
	}
	return "", errors.New("no Consul agent found: run `make consul` (builds ~/.cache/consulate/consul-" + Version + ") or set CONSUL_BIN")
}

var versionRE = regexp.MustCompile(`Consul v(\d+)\.(\d+)`)

func versionAtLeast(out string, major, minor int) bool {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(m[1])
	mi, _ := strconv.Atoi(m[2])
	return ma > major || (ma == major && mi >= minor)
}

// repoRoot walks up from the working directory to the main module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && regexp.MustCompile(`(?m)^module github.com/seed-a778acb4/consulate$`).Match(b) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/seed-a778acb4/consulate not found")
		}
		dir = parent
	}
}

// Ports are the agent's listening ports, all on 127.0.0.1.
type Ports struct {
	HTTP, DNS, SerfLAN, SerfWAN, Server, GRPC, GRPCTLS int
}

// Agent is a running (or stopped) Consul agent.
type Agent struct {
	// Client talks to the agent's HTTP API.
	Client *api.Client
	// HTTPAddr is host:port of the HTTP API.
	HTTPAddr string
	// DataDir is the agent's data directory; it survives Stop/Restart.
	DataDir string
	Ports   Ports
	// NodeName of the agent.
	NodeName string

	t       testing.TB
	bin     string
	cfgPath string
	logPath string
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
}

// Option changes how an agent starts.
type Option func(*options)

type options struct {
	persistent bool
	extra      map[string]any
}

// Persistent runs a single-node server with an on-disk raft store instead
// of -dev (whose store is in memory), so Restart keeps the catalog and
// config entries. Leader election then takes a few seconds longer.
func Persistent() Option { return func(o *options) { o.persistent = true } }

// WithConfig merges extra agent configuration (JSON-encodable) into the
// generated config file.
func WithConfig(key string, value any) Option {
	return func(o *options) { o.extra[key] = value }
}

var nodeSeq struct {
	sync.Mutex
	n int
}

// Start runs a Consul agent for the test and stops it at cleanup.
func Start(t testing.TB, opts ...Option) *Agent {
	t.Helper()
	o := options{extra: map[string]any{}}
	for _, f := range opts {
		f(&o)
	}
	bin, err := Binary()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	dir := t.TempDir()
	nodeSeq.Lock()
	nodeSeq.n++
	node := fmt.Sprintf("consultest-%d-%d", os.Getpid(), nodeSeq.n)
	nodeSeq.Unlock()

	a := &Agent{
		t:        t,
		bin:      bin,
		DataDir:  filepath.Join(dir, "data"),
		cfgPath:  filepath.Join(dir, "agent.json"),
		logPath:  filepath.Join(dir, "agent.log"),
		NodeName: node,
	}
	if err := os.MkdirAll(a.DataDir, 0o755); err != nil {
		t.Fatalf("consultest: %v", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		a.Ports = freePorts(t)
		if err := a.writeConfig(o); err != nil {
			t.Fatalf("consultest: %v", err)
		}
		lastErr = a.start(o.persistent)
		if lastErr == nil {
			break
		}
		// A port taken between allocation and bind: try fresh ports.
		a.kill()
	}
	if lastErr != nil {
		t.Fatalf("consultest: starting consul: %v\n%s", lastErr, a.logTail())
	}
	t.Cleanup(a.Stop)
	return a
}

func (a *Agent) writeConfig(o options) error {
	cfg := map[string]any{
		"node_name":            a.NodeName,
		"datacenter":           "dc1",
		"bind_addr":            "127.0.0.1",
		"advertise_addr":       "127.0.0.1",
		"client_addr":          "127.0.0.1",
		"data_dir":             a.DataDir,
		"log_level":            "warn",
		"disable_update_check": true,
		"connect":              map[string]any{"enabled": true},
		"ports": map[string]any{
			"http":     a.Ports.HTTP,
			"dns":      a.Ports.DNS,
			"serf_lan": a.Ports.SerfLAN,
			"serf_wan": a.Ports.SerfWAN,
			"server":   a.Ports.Server,
			"grpc":     a.Ports.GRPC,
			"grpc_tls": a.Ports.GRPCTLS,
		},
	}
	if o.persistent {
		cfg["server"] = true
		cfg["bootstrap_expect"] = 1
		cfg["performance"] = map[string]any{"raft_multiplier": 1}
	}
	for k, v := range o.extra {
		cfg[k] = v
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	a.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(a.Ports.HTTP))
	return os.WriteFile(a.cfgPath, b, 0o644)
}

func (a *Agent) start(persistent bool) error {
	args := []string{"agent", "-config-file", a.cfgPath}
	if !persistent {
		args = append(args, "-dev")
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(a.bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Own process group, so a stopped test never leaves an agent behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()

	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.HTTPAddr
	cfg.Token = ""
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	a.Client = client
	return a.waitReady(done, 90*time.Second)
}

// waitReady polls until the agent has a leader and its own node is in the
// catalog (registrations before that race anti-entropy).
func (a *Agent) waitReady(done <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-done:
			return errors.New("consul exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("no leader after %s (last error: %v)", timeout, last)
		case <-tick.C:
		}
		q := (&api.QueryOptions{}).WithContext(ctx)
		leader, err := a.Client.Status().Leader()
		if err != nil || leader == "" {
			last = fmt.Errorf("leader %q: %v", leader, err)
			continue
		}
		// The leader's serf reconciliation can put the node in the catalog
		// before the agent's anti-entropy has synced its node meta: wait for
		// the catalog to hold the agent's own meta too.
		self, err := a.Client.Agent().Self()
		if err != nil {
			last = err
			continue
		}
		node, _, err := a.Client.Catalog().Node(a.NodeName, q)
		if err != nil || node == nil || node.Node == nil {
			last = fmt.Errorf("agent node not in catalog yet: %v", err)
			continue
		}
		if want, ok := self["Meta"]; ok && !metaContains(node.Node.Meta, want) {
			last = errors.New("agent node meta not synced yet")
			continue
		}
		return nil
	}
}

// Stop terminates the agent and waits for it to exit. It is safe to call
// more than once; the data directory is kept for Restart.
func (a *Agent) Stop() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (a *Agent) kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.cmd = nil
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// Restart starts a stopped agent again with the same ports and data
// directory. With -dev (the default) the catalog starts empty and Consul's
// raft index starts over; with Persistent() the state survives.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	persistent := false
	if b, err := os.ReadFile(a.cfgPath); err == nil {
		var cfg map[string]any
		if json.Unmarshal(b, &cfg) == nil {
			persistent = cfg["server"] == true
		}
	}
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		// The old process's ports can linger briefly in the kernel.
		if err = a.start(persistent); err == nil {
			return
		}
		a.kill()
		time.Sleep(250 * time.Millisecond)
	}
	a.t.Fatalf("consultest: restarting consul: %v\n%s", err, a.logTail())
}

func (a *Agent) logTail() string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePorts picks seven distinct loopback ports (TCP and UDP free, for DNS
// and serf) from the process-wide registry the demo launcher uses too.
func freePorts(t testing.TB) Ports {
	t.Helper()
	got, err := freeport.Take(7)
	if err != nil {
		t.Fatalf("consultest: free ports: %v", err)
	}
	return Ports{HTTP: got[0], DNS: got[1], SerfLAN: got[2], SerfWAN: got[3], Server: got[4], GRPC: got[5], GRPCTLS: got[6]}
}

// metaContains reports whether every key of want (the agent's own node meta
// as /v1/agent/self reports it) has the same value in got.
func metaContains(got map[string]string, want map[string]any) bool {
	for k, v := range want {
		if s, ok := v.(string); ok && got[k] != s {
			return false
		}
	}
	return true
}
