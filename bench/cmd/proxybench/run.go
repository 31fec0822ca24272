package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/bench/procstat"
)

func run(ctx context.Context, s settings) error {
	for _, b := range []string{s.SidecarBin, s.UpstreamBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (make bench-proxies builds it)", err)
		}
	}
	for _, tool := range []string{"wrk", "nginx", "haproxy", "caddy"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: run bench/setup.sh (make bench-proxies does)", tool)
		}
	}
	dir := s.LogDir
	if dir == "" {
		d, err := os.MkdirTemp("", "proxybench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	res := result{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Settings: s}
	res.Machine.LoadAvgStart = loadavg()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e, err := setUp(ctx, s, dir)
	defer e.stopAll()
	if err != nil {
		return fmt.Errorf("set-up: %w (configs and logs in %s; -log-dir keeps them)", err, dir)
	}
	idle := map[string]procstat.Mem{}
	for _, n := range s.Targets {
		idle[n] = procsMem(e.targets[n].procs)
	}
	// Warm-up: a short load on each target, not recorded.
	warm := s
	warm.Duration, warm.RateDuration = time.Second, time.Second
	we := *e
	we.s = warm
	for _, n := range s.Targets {
		if _, err := we.measure(ctx, e.targets[n]); err != nil {
			return fmt.Errorf("warm-up %s: %w", n, err)
		}
	}
	rounds := map[string][]round{}
	for i := range s.Rounds {
		for j := range s.Targets {
			n := s.Targets[(i+j)%len(s.Targets)]
			fmt.Fprintf(os.Stderr, "round %d/%d: %s\n", i+1, s.Rounds, n)
			r, err := e.measure(ctx, e.targets[n])
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i+1, n, err)
			}
			rounds[n] = append(rounds[n], r)
		}
	}
	for _, n := range s.Targets {
		t := summarize(n, e.targets[n].grpc, rounds, mib(idle[n].RSS))
		t.RSSIdleAnonMiB, t.RSSIdleFileMiB = mib(idle[n].Anon), mib(idle[n].File)
		res.Targets = append(res.Targets, t)
	}
	if s.Many > 0 {
		fmt.Fprintf(os.Stderr, "sidecar with %d routes and clusters\n", s.Many)
		m, err := e.measureMany(ctx)
		if err != nil {
			// Reported, not fatal: the comparison above stands on its own.
			m.Error = err.Error()
		}
		res.Many = &m
	}
	res.Machine.LoadAvgEnd = loadavg()
	res.Tools = versions()
	printTables(os.Stdout, &res)
	return writeJSON(s.Out, &res)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
