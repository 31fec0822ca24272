package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/seed-a778acb4/consulate/bench/load"
)

// profileResult is one profiled run of the sidecar's data path.
type profileResult struct {
	Requests     int64   `json:"requests"`
	RPS          float64 `json:"rps"`
	CPUPerReqUS  float64 `json:"cpu_us_per_req"`
	CoreBusy     float64 `json:"core_busy"`
	AllocsPerReq float64 `json:"allocs_per_req"`
	BytesPerReq  float64 `json:"bytes_per_req"`
	GCs          uint32  `json:"gcs"`
}

// runProfile runs bin/sidecarprof (the sidecar's data path with pprof on)
// pinned like the sidecar, under wrk for s.Duration, and reports CPU,
// allocations and bytes per request; the profiles stay in dir.
func runProfile(ctx context.Context, s settings, bin, dir, level string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lo := "127.0.0.1:"
	upAddr, listen := lo+port(), lo+port()
	up, err := start("upstream", s.GenCPU, []string{"GOMAXPROCS=1"}, filepath.Join(dir, "upstream.log"), s.UpstreamBin, "-addr", upAddr)
	if err != nil {
		return err
	}
	defer up.stop()
	if err := waitHTTP(ctx, up, "http://"+upAddr+"/", "", 10*time.Second); err != nil {
		return err
	}
	argv := []string{"taskset", "-c", strconv.Itoa(s.ProxyCPU), bin, "-upstream", upAddr, "-listen", listen, "-out", dir, "-log-level", level, "-memprofilerate", strconv.Itoa(s.ProfMemRate)}
	argv = append(argv, strings.Fields(s.ProfArgs)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The access log goes to /dev/null as in the comparison (a pipe read
	// by this process would throttle the sidecar).
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer devnull.Close()
	cmd.Stderr = devnull
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	prof := &child{name: "sidecarprof", cmd: cmd, done: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		ok := sc.Scan() && strings.TrimSpace(sc.Text()) == "ready"
		ready <- ok
		io.Copy(io.Discard, stdout)
		prof.err = cmd.Wait()
		close(prof.done)
	}()
	defer prof.stop()
	select {
	case ok := <-ready:
		if !ok {
			return fmt.Errorf("sidecarprof did not start")
		}
	case <-time.After(30 * time.Second):
		return fmt.Errorf("sidecarprof not ready after 30 s")
	}
	cpu0, err := procsCPU([]*child{prof})
	if err != nil {
		return err
	}
	t0 := time.Now()
	var requests int64
	var rps float64
	driver := fmt.Sprintf("wrk -c%d", s.Conns)
	if s.ProfRate > 0 {
		// A constant rate shows what a sidecar far from saturation pays
		// per request: wake-ups, not batching.
		driver = fmt.Sprintf("%d req/s from %d connections", s.ProfRate, s.RateWorkers)
		cr, err := load.ConstantRate(ctx, "http://"+listen+"/", s.ProfRate, s.RateWorkers, s.Duration)
		if err != nil {
			return err
		}
		requests, rps = int64(cr.Sent), float64(cr.Sent)/cr.Duration.Seconds()
	} else {
		w, err := load.Wrk(ctx, "http://"+listen+"/", s.Conns, s.Duration, s.GenCPU)
		if err != nil {
			return err
		}
		requests, rps = w.Requests, w.RPS
	}
	wall := time.Since(t0)
	cpu1, err := procsCPU([]*child{prof})
	if err != nil {
		return err
	}
	_ = syscall.Kill(prof.pid(), syscall.SIGTERM)
	select {
	case <-prof.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("sidecarprof did not stop")
	}
	var st struct {
		Mallocs uint64 `json:"mallocs"`
		Bytes   uint64 `json:"bytes"`
		GCs     uint32 `json:"gcs"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "stats.json"))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	n := float64(requests)
	r := profileResult{
		Requests: requests, RPS: rps,
		CPUPerReqUS: us(cpu1-cpu0) / n, CoreBusy: (cpu1 - cpu0).Seconds() / wall.Seconds(),
		AllocsPerReq: float64(st.Mallocs) / n, BytesPerReq: float64(st.Bytes) / n, GCs: st.GCs,
	}
	out, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "profile.json"), append(out, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("sidecar data path under %s for %s (log level %s): %.0f req/s, %.1f µs CPU/req, core %.0f%% busy, %.1f allocs/req, %.0f B/req, %d GCs\n",
		driver, s.Duration, level, r.RPS, r.CPUPerReqUS, 100*r.CoreBusy, r.AllocsPerReq, r.BytesPerReq, r.GCs)
	fmt.Printf("profiles: go tool pprof -top %s %s   (and %s)\n", bin, filepath.Join(dir, "cpu.pprof"), filepath.Join(dir, "allocs.pprof"))
	return nil
}
