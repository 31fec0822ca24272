// Command proxybench measures what the sidecar costs on the data path,
// next to nginx, HAProxy and Caddy doing the same reverse-proxy job and to
// no proxy at all (direct), all on 127.0.0.1. `make bench-proxies` runs it
// after bench/setup.sh has installed the peers and wrk.
//
// Set-up: one upstream (bench/cmd/upstream: a fixed 1 KiB body over
// HTTP/1.1 and h2c, plus gRPC) and the load generators on -gen-cpu; every
// proxy under test on -proxy-cpu, Go proxies with GOMAXPROCS=1. Sidecars
// get their config over ADS from an in-process go-control-plane server
// (package bench/xdsstatic). Targets:
//
//	direct         wrk → upstream
//	sidecar        wrk → sidecar outbound listener → upstream (one hop)
//	sidecar-2hop   wrk → client sidecar → server sidecar → upstream (a mesh)
//	sidecar-quiet  one hop with -log-level warn (no access log line)
//	nginx, haproxy, caddy   wrk → peer → upstream, one worker each
//	grpc-direct, grpc-sidecar   unary gRPC calls, direct and through a sidecar
//
// Targets are interleaved in rounds (the order rotates each round) so that
// the drift of a shared machine hits all of them alike; per target the
// median over rounds is reported. Per round and target: wrk for -duration
// (max requests/s; proxy CPU time per request from /proc/PID/stat
// utime+stime; how busy the proxy's core was; peak RSS), then a constant
// -rate for -rate-duration (p50/p90/p99). Finally a sidecar with -many
// routes and clusters is started to read its RSS. A table goes to stdout
// and everything to -out as JSON.
//
// With -profile DIR it profiles instead: bench/cmd/sidecarprof (the
// sidecar's data path with pprof on) under wrk, pinned the same way, and
// reports CPU time, allocations and bytes per request.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type settings struct {
	SidecarBin   string        `json:"-"`
	BaselineBin  string        `json:"-"`
	UpstreamBin  string        `json:"-"`
	Targets      []string      `json:"targets"`
	Rounds       int           `json:"rounds"`
	Duration     time.Duration `json:"wrk_duration_ns"`
	Conns        int           `json:"wrk_connections"`
	Rate         int           `json:"rate_per_s"`
	RateDuration time.Duration `json:"rate_duration_ns"`
	RateWorkers  int           `json:"rate_workers"`
	GRPCWorkers  int           `json:"grpc_workers"`
	Many         int           `json:"many_routes"`
	GenCPU       int           `json:"generator_cpu"`
	ProxyCPU     int           `json:"proxy_cpu"`
	Out          string        `json:"-"`
	LogDir       string        `json:"-"`
	SidecarLogs  bool          `json:"-"`
	Profile      string        `json:"-"`
	ProfBin      string        `json:"-"`
	ProfLevel    string        `json:"-"`
	ProfMemRate  int           `json:"-"`
	ProfRate     int           `json:"-"`
	ProfArgs     string        `json:"-"`
}

const allTargets = "direct,sidecar,sidecar-2hop,sidecar-quiet,nginx,haproxy,caddy,grpc-direct,grpc-sidecar"

func main() {
	var s settings
	var targets string
	flag.StringVar(&s.SidecarBin, "sidecar", "bin/sidecar", "sidecar binary")
	flag.StringVar(&s.BaselineBin, "baseline", "", "a second sidecar binary (e.g. built before a change), measured as target sidecar-baseline (one hop, access log on, like sidecar) in the same rounds")
	flag.StringVar(&s.UpstreamBin, "upstream", "bin/bench-upstream", "upstream binary (bench/cmd/upstream)")
	flag.StringVar(&targets, "targets", allTargets, "comma-separated targets")
	flag.IntVar(&s.Rounds, "rounds", 3, "rounds (targets interleaved in each)")
	flag.DurationVar(&s.Duration, "duration", 5*time.Second, "wrk duration per target and round (whole seconds)")
	flag.IntVar(&s.Conns, "conns", 32, "wrk connections")
	flag.IntVar(&s.Rate, "rate", 1000, "constant rate for the latency figures, requests/s")
	flag.DurationVar(&s.RateDuration, "rate-duration", 5*time.Second, "constant-rate duration per target and round")
	flag.IntVar(&s.RateWorkers, "rate-workers", 16, "connections of the constant-rate generator")
	flag.IntVar(&s.GRPCWorkers, "grpc-workers", 16, "concurrent gRPC callers (one connection)")
	flag.IntVar(&s.Many, "many", 10000, "routes and clusters for the RSS-under-config figure (0: skip)")
	flag.IntVar(&s.GenCPU, "gen-cpu", 0, "CPU for the generators and the upstream")
	flag.IntVar(&s.ProxyCPU, "proxy-cpu", 1, "CPU for the proxy under test")
	flag.StringVar(&s.Out, "out", "bench/results/latest.json", "JSON results file")
	flag.StringVar(&s.LogDir, "log-dir", "", "keep configs and logs here (default: a temp dir, removed)")
	flag.BoolVar(&s.SidecarLogs, "sidecar-logs", false, "write sidecar logs (access log included) to files in -log-dir instead of discarding them")
	flag.StringVar(&s.Profile, "profile", "", "instead of the comparison, profile the sidecar's data path (bin/sidecarprof) under wrk and write cpu.pprof, allocs.pprof and profile.json here")
	flag.StringVar(&s.ProfBin, "sidecarprof", "bin/sidecarprof", "profiling binary (bench/cmd/sidecarprof) for -profile")
	flag.StringVar(&s.ProfLevel, "profile-log-level", "info", "sidecar log level for -profile (info: access log on)")
	flag.IntVar(&s.ProfRate, "profile-rate", 0, "for -profile: drive the sidecar at this constant rate (req/s, -rate-workers connections) instead of wrk's maximum")
	flag.StringVar(&s.ProfArgs, "profile-args", "", "extra sidecarprof flags for -profile, space-separated (e.g. -unbuffered-access-log)")
	flag.IntVar(&s.ProfMemRate, "profile-memprofilerate", 0, "runtime.MemProfileRate for -profile (0: Go's default; 4096 for a fine allocs.pprof, which inflates CPU)")
	flag.Parse()
	s.Targets = strings.Split(targets, ",")
	if s.BaselineBin != "" && !slices.Contains(s.Targets, "sidecar-baseline") {
		s.Targets = append(s.Targets, "sidecar-baseline")
	}
	if s.Rounds < 1 || s.Duration < time.Second || s.Rate < 1 {
		fmt.Fprintln(os.Stderr, "proxybench: -rounds ≥ 1, -duration ≥ 1s and -rate ≥ 1 please")
		os.Exit(2)
	}
	pinSelf(s.GenCPU)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	if s.Profile != "" {
		err = runProfile(ctx, s, s.ProfBin, s.Profile, s.ProfLevel)
	} else {
		err = run(ctx, s)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

// pinSelf re-executes the harness under taskset so that all its threads
// (the constant-rate and gRPC generators) stay on the generator's CPU.
func pinSelf(cpu int) {
	const marker = "PROXYBENCH_PINNED"
	if os.Getenv(marker) != "" {
		return
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench: taskset not found (util-linux); run bench/setup.sh")
		os.Exit(1)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
	env := append(os.Environ(), marker+"=1", "GOMAXPROCS=1")
	argv := append([]string{ts, "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	err = syscall.Exec(ts, argv, env)
	fmt.Fprintln(os.Stderr, "proxybench: exec taskset:", err)
	os.Exit(1)
}
