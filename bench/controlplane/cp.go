package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seed-a778acb4/consulate/bench/procstat"
)

// controlPlane is the control-plane binary under test, in its own process
// so that its RSS and CPU are its own.
type controlPlane struct {
	cmd       *exec.Cmd
	done      chan struct{}
	xdsAddr   string
	adminAddr string
}

func startControlPlane(ctx context.Context, bin, dir, consulAddr string, extraArgs []string) (*controlPlane, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	cp := &controlPlane{done: make(chan struct{}),
		xdsAddr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
		adminAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))}
	logFile, err := os.Create(filepath.Join(dir, "control-plane.log"))
	if err != nil {
		return nil, err
	}
	args := append([]string{"-consul-addr", consulAddr, "-xds-addr", cp.xdsAddr, "-admin-addr", cp.adminAddr,
		"-log-level", "warn"}, extraArgs...)
	cp.cmd = exec.Command(bin, args...)
	cp.cmd.Stdout, cp.cmd.Stderr = logFile, logFile
	cp.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cp.cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	go func() {
		_ = cp.cmd.Wait()
		logFile.Close()
		close(cp.done)
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get("http://" + cp.adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				logf("control plane admin on http://%s (pprof under /debug/pprof/)", cp.adminAddr)
				return cp, nil
			}
		}
		select {
		case <-cp.done:
			return nil, fmt.Errorf("control plane exited; see %s", filepath.Join(dir, "control-plane.log"))
		case <-ctx.Done():
			cp.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cp.stop()
			return nil, fmt.Errorf("control plane not ready after 5 minutes")
		}
	}
}

func (cp *controlPlane) stop() {
	_ = cp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-cp.done:
	case <-time.After(15 * time.Second):
		_ = cp.cmd.Process.Kill()
		<-cp.done
	}
}

func (cp *controlPlane) cpu() time.Duration {
	d, _ := procstat.CPU(cp.cmd.Process.Pid)
	return d
}

func (cp *controlPlane) rss() int64 {
	n, _ := procstat.RSS(cp.cmd.Process.Pid)
	return n
}

// peakRSS is VmHWM, the process's high-water resident set.
func (cp *controlPlane) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", cp.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// metric reads one unlabelled sample (e.g. a histogram's _sum or _count)
// from /metrics.
func (cp *controlPlane) metric(name string) float64 {
	resp, err := http.Get("http://" + cp.adminAddr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			v, _ := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v
		}
	}
	return 0
}
