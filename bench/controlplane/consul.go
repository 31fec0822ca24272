package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/bench/procstat"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// consulAgent is a `consul agent -dev` on free loopback ports.
type consulAgent struct {
	cmd    *exec.Cmd
	done   chan struct{}
	addr   string
	client *api.Client
}

// startConsul runs a dev agent with its data and log under dir and waits
// until it has a leader.
func startConsul(ctx context.Context, dir string) (*consulAgent, error) {
	bin, err := consultest.Binary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(7)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"node_name": "bench", "datacenter": "dc1", "bind_addr": "127.0.0.1", "advertise_addr": "127.0.0.1",
		"client_addr": "127.0.0.1", "data_dir": filepath.Join(dir, "data"), "log_level": "warn",
		"disable_update_check": true, "connect": map[string]any{"enabled": true},
		"ports": map[string]any{"http": ports[0], "dns": ports[1], "serf_lan": ports[2], "serf_wan": ports[3],
			"server": ports[4], "grpc": ports[5], "grpc_tls": ports[6]},
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "consul.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "consul.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "agent", "-dev", "-config-file", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	a := &consulAgent{cmd: cmd, done: make(chan struct{}), addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(a.done)
	}()
	c := api.DefaultNonPooledConfig()
	c.Address = a.addr
	// The harness's own connections stay well under Consul's 200 per
	// client IP: the loader uses loadWorkers at a time.
	c.Transport.MaxIdleConnsPerHost = loadWorkers
	if a.client, err = api.NewClient(c); err != nil {
		a.stop()
		return nil, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		leader, err := a.client.Status().Leader()
		if err == nil && leader != "" {
			return a, nil
		}
		select {
		case <-a.done:
			return nil, fmt.Errorf("consul exited; see %s", filepath.Join(dir, "consul.log"))
		case <-ctx.Done():
			a.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, fmt.Errorf("consul has no leader after 90s")
		}
	}
}

// stop ends the agent (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (a *consulAgent) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.done
	}
}

func (a *consulAgent) cpu() time.Duration {
	d, _ := procstat.CPU(a.cmd.Process.Pid)
	return d
}

// freePorts returns n distinct free loopback TCP ports (the listeners are
// held until all are chosen, so they differ).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}
