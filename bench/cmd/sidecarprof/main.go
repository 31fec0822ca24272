// Command sidecarprof is the sidecar's data path wired as the sidecar
// binary wires it — xDS client (Delta ADS) → listener manager, the JSON
// logger on stderr, a Prometheus registry — fed by an in-process static
// control plane (package bench/xdsstatic), with the Go profilers on. It is
// what `proxybench -profile` runs under wrk to show where the sidecar's
// CPU and allocations go.
//
// Usage:
//
//	sidecarprof -upstream 127.0.0.1:8080 -listen 127.0.0.1:15001 -out DIR [-log-level info] [-memprofilerate 0]
//
// Once the listener answers it prints "ready" on stdout and starts the CPU
// profile. On SIGTERM or SIGINT it stops it and writes into DIR: cpu.pprof,
// allocs.pprof (allocations since start, sampled at -memprofilerate) and
// stats.json (mallocs and bytes allocated while profiling). With -many N
// it loads N routes and clusters instead, profiles the CPU until the last
// one serves (cpu-many.pprof) and writes heap.pprof and heap.json. The admin
// endpoint is left out: it is not on the data path.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/seed-a778acb4/consulate/bench/xdsstatic"
	"github.com/seed-a778acb4/consulate/internal/logging"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
	"github.com/seed-a778acb4/consulate/sidecar/listener"
	"github.com/seed-a778acb4/consulate/sidecar/xdsclient"
)

func main() {
	upstream := flag.String("upstream", "127.0.0.1:8080", "upstream host:port (bench/cmd/upstream)")
	listen := flag.String("listen", "127.0.0.1:15001", "outbound listener address (loopback)")
	out := flag.String("out", ".", "directory for cpu.pprof, allocs.pprof and stats.json")
	level := flag.String("log-level", "info", "log level (info writes the access log to stderr)")
	many := flag.Int("many", 0, "instead of profiling requests: load a snapshot with this many routes and clusters, write heap.pprof once it serves, and exit")
	unbuffered := flag.Bool("unbuffered-access-log", false, "write the access log unbuffered through the main logger (the sidecar before issue 8's optimisation), for comparison")
	proto := flag.String("xds-protocol", "delta", "ADS protocol: delta or sotw")
	memRate := flag.Int("memprofilerate", 0, "runtime.MemProfileRate (0: Go's default, 512 KiB; 4096 samples allocations finely but costs CPU)")
	flag.Parse()
	if *memRate > 0 {
		runtime.MemProfileRate = *memRate
	}
	if err := run(*upstream, *listen, *out, *level, *many, xdsclient.Protocol(*proto), *unbuffered); err != nil {
		fmt.Fprintln(os.Stderr, "sidecarprof:", err)
		os.Exit(1)
	}
}

type stats struct {
	Mallocs      uint64  `json:"mallocs"`
	Bytes        uint64  `json:"bytes"`
	GCs          uint32  `json:"gcs"`
	Seconds      float64 `json:"seconds"`
	HeapInUseMiB float64 `json:"heap_inuse_mib"`
}

func run(upstream, listen, out, level string, many int, proto xdsclient.Protocol, unbuffered bool) error {
	log, err := logging.New(level, "json")
	if err != nil {
		return err
	}
	// The access log as sidecar/main.go wires it: buffered, no caller.
	access, flush, err := logging.NewBuffered(level, "json", 64<<10, time.Second)
	if err != nil {
		return err
	}
	defer flush()
	if unbuffered {
		access = log
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	up, err := hostPort(upstream)
	if err != nil {
		return err
	}
	lp, err := hostPort(listen)
	if err != nil {
		return err
	}
	snap, err := xdsstatic.Snapshot("1", xdsstatic.Forward{Name: "app", Port: lp.Port, Endpoints: []decodetest.HostPort{up}})
	readyHost := ""
	if many > 0 {
		snap, err = xdsstatic.Many("1", lp.Port, many, up)
		readyHost = fmt.Sprintf("svc-%05d", many-1)
	}
	if err != nil {
		return err
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	xctx, xcancel := context.WithCancel(context.Background())
	defer xcancel()
	go xdsstatic.Serve(xctx, xl, map[string]*cachev3.Snapshot{"bench-prof": snap}) //nolint:errcheck // ends with xctx

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	lm, err := listener.NewManager(log, reg, listener.Options{DrainTimeout: time.Second, AccessLogger: access})
	if err != nil {
		return err
	}
	defer lm.Close(context.Background())
	client, err := xdsclient.New(xdsclient.Options{
		NodeID: "bench-prof", ControlPlane: xl.Addr().String(), Protocol: proto, Logger: log, Registerer: reg,
		Apply: func(_ context.Context, cfg *config.Config) error { return lm.Apply(cfg) },
	})
	if err != nil {
		return err
	}
	if many > 0 {
		// Where the time to the first complete config goes.
		f, err := os.Create(filepath.Join(out, "cpu-many.pprof"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	cctx, ccancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = client.Run(cctx) }()
	defer func() { ccancel(); <-done }()

	t0 := time.Now()
	if err := waitReady(ctx, "http://"+listen+"/", readyHost); err != nil {
		return err
	}
	if many > 0 {
		pprof.StopCPUProfile()
		return heapProfile(out, many, time.Since(t0))
	}
	cpuFile, err := os.Create(filepath.Join(out, "cpu.pprof"))
	if err != nil {
		return err
	}
	defer cpuFile.Close()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	t0 = time.Now()
	if err := pprof.StartCPUProfile(cpuFile); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	pprof.StopCPUProfile()
	runtime.ReadMemStats(&m1)
	st := stats{
		Mallocs: m1.Mallocs - m0.Mallocs, Bytes: m1.TotalAlloc - m0.TotalAlloc, GCs: m1.NumGC - m0.NumGC,
		Seconds: time.Since(t0).Seconds(), HeapInUseMiB: float64(m1.HeapInuse) / (1 << 20),
	}
	af, err := os.Create(filepath.Join(out, "allocs.pprof"))
	if err != nil {
		return err
	}
	defer af.Close()
	if err := pprof.Lookup("allocs").WriteTo(af, 0); err != nil {
		return err
	}
	b, _ := json.Marshal(st)
	return os.WriteFile(filepath.Join(out, "stats.json"), b, 0o644)
}

func hostPort(addr string) (decodetest.HostPort, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return decodetest.HostPort{}, err
	}
	n, err := strconv.Atoi(p)
	return decodetest.HostPort{Host: h, Port: uint32(n)}, err
}

// heapProfile writes heap.pprof (after a GC) and heap.json for a sidecar
// holding many routes and clusters.
func heapProfile(out string, many int, ready time.Duration) error {
	runtime.GC()
	f, err := os.Create(filepath.Join(out, "heap.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		return err
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b, _ := json.Marshal(map[string]any{
		"routes_and_clusters": many, "ready_ms": ready.Milliseconds(),
		"heap_inuse_mib": float64(m.HeapInuse) / (1 << 20), "sys_mib": float64(m.Sys) / (1 << 20),
		"goroutines": runtime.NumGoroutine(),
	})
	fmt.Println(string(b))
	return os.WriteFile(filepath.Join(out, "heap.json"), b, 0o644)
}

func waitReady(ctx context.Context, url, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if host != "" {
			req.Host = host
		}
		if res, err := c.Do(req); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				c.CloseIdleConnections()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("listener %s not ready: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
