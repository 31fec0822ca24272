package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// runResult is the figures of one mesh size.
type runResult struct {
	Services   int              `json:"services"`
	Instances  int              `json:"instances"`
	Sidecars   int              `json:"sidecars"`
	Proxies    int              `json:"connected_proxies"`
	SotW       int              `json:"sotw_proxies"`
	Delta      int              `json:"delta_proxies"`
	RegisterS  float64          `json:"register_seconds"`
	ReadyS     float64          `json:"control_plane_ready_seconds"`
	SyncS      float64          `json:"all_proxies_synced_seconds"`
	SyncCPUS   float64          `json:"cp_cpu_seconds_to_sync"`
	RSSMiB     float64          `json:"cp_rss_mib_synced"`
	PeakRSSMiB float64          `json:"cp_peak_rss_mib"`
	IdleCPUPct float64          `json:"cp_idle_cpu_percent"`
	Scenarios  []scenarioResult `json:"scenarios"`
}

type report struct {
	Date    string      `json:"date"`
	Machine string      `json:"machine"`
	Args    string      `json:"args"`
	Runs    []runResult `json:"runs"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/controlplane:", err)
		os.Exit(1)
	}
}

func run() error {
	sizes := flag.String("services", "1000,10000", "comma-separated mesh sizes (services) to measure")
	proxies := flag.Int("proxies", 1000, "simulated sidecars (half SotW, half Delta)")
	changes := flag.Int("changes", 20, "changes per scenario (check, resolver); the global scenario makes a quarter")
	cpBin := flag.String("control-plane", "bin/control-plane", "control-plane binary to measure")
	out := flag.String("out", "bench/results/controlplane.json", "JSON results file")
	conns := flag.Int("conns", 20, "gRPC connections the simulated sidecars share")
	keep := flag.Bool("keep", false, "keep the work directory (Consul and control-plane logs) and print its path")
	timeout := flag.Duration("timeout", 25*time.Minute, "the harness stops after this long")
	var cpArgs stringList
	flag.Var(&cpArgs, "cp-arg", "extra control-plane flag (repeatable), e.g. -cp-arg=-debounce=10ms")
	flag.Parse()

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, *timeout)
	defer cancelT()

	rep := report{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Args: strings.Join(os.Args[1:], " ")}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2*hotServices {
			return fmt.Errorf("-services %q: want numbers ≥ %d", s, 2*hotServices)
		}
		t := topology{services: n, proxies: min(*proxies, n/2*3)}
		fmt.Fprintf(os.Stderr, "== %d services, %d sidecars, %d connected\n", n, t.sidecarCount(), t.proxies)
		r, err := measure(ctx, t, *cpBin, cpArgs, *conns, *changes, *keep)
		rep.Runs = append(rep.Runs, r)
		if err != nil {
			printTable(os.Stdout, rep)
			return err
		}
	}
	printTable(os.Stdout, rep)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(*out, append(b, '\n'), 0o644)
}

// measure runs one mesh size from a fresh Consul to the last scenario.
func measure(ctx context.Context, t topology, cpBin string, cpArgs []string, nconns, nchanges int, keep bool) (runResult, error) {
	r := runResult{Services: t.services, Instances: 3 * t.services, Sidecars: t.sidecarCount(), Proxies: t.proxies}
	dir, err := os.MkdirTemp("", "consulate-bench-cp-")
	if err != nil {
		return r, err
	}
	if keep {
		logf("work directory %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	consul, err := startConsul(ctx, dir)
	if err != nil {
		return r, err
	}
	defer consul.stop()
	logf("consul on http://%s", consul.addr)
	start := time.Now()
	if err := t.register(ctx, consul.client); err != nil {
		return r, fmt.Errorf("register: %w", err)
	}
	r.RegisterS = round(time.Since(start).Seconds())
	logf("registered in %.1fs", r.RegisterS)

	start = time.Now()
	cp, err := startControlPlane(ctx, cpBin, dir, consul.addr, cpArgs)
	if err != nil {
		return r, err
	}
	defer cp.stop()
	r.ReadyS = round(time.Since(start).Seconds())
	logf("control plane ready in %.1fs", r.ReadyS)

	// Clients: half SotW, half Delta, spread over nconns connections.
	// Client keepalive stays off (grpc-go's default): a thousand streams'
	// pings in one tick overflow this host's loopback backlog (DESIGN.md).
	conns := make([]*grpc.ClientConn, nconns)
	for i := range conns {
		if conns[i], err = grpc.NewClient(cp.xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return r, err
		}
		defer conns[i].Close()
	}
	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stopClients()
		wg.Wait()
	}()
	clients := make([]*client, t.proxies)
	streamErr := make(chan error, 1)
	cpu0 := cp.cpu()
	start = time.Now()
	for p := range t.proxies {
		i, k := t.sidecar(p)
		c := newClient(sidecarID(i, k), p, p%2 == 1)
		clients[p] = c
		if c.delta {
			r.Delta++
		} else {
			r.SotW++
		}
		wg.Go(func() {
			if err := c.run(cctx, conns[p%nconns]); err != nil && cctx.Err() == nil {
				select {
				case streamErr <- fmt.Errorf("stream %s: %w", c.id, err):
				default:
				}
			}
		})
	}
	syncDeadline := time.NewTimer(5 * time.Minute)
	defer syncDeadline.Stop()
	for _, c := range clients {
		select {
		case <-c.ready:
		case err := <-streamErr:
			return r, err
		case <-syncDeadline.C:
			return r, fmt.Errorf("%s has not received every type after 5 minutes", c.id)
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
	r.SyncS = round(time.Since(start).Seconds())
	r.SyncCPUS = round((cp.cpu() - cpu0).Seconds())
	logf("%d proxies synced in %.1fs", t.proxies, r.SyncS)

	idle0, idleT := cp.cpu(), time.Now()
	select {
	case <-time.After(5 * time.Second):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	r.IdleCPUPct = round(100 * float64(cp.cpu()-idle0) / float64(time.Since(idleT)))
	r.RSSMiB = round(float64(cp.rss()) / (1 << 20))

	for _, sc := range []struct {
		name    string
		changes []change
	}{
		{"check fails/recovers (hot service)", checkChanges(t, consul.client, clients, nchanges)},
		{"service-resolver write (hot service)", resolverChanges(t, consul.client, clients, nchanges)},
		{"proxy-defaults write (every proxy)", globalChanges(consul.client, clients, max(2, nchanges/4))},
	} {
		res, err := runScenario(ctx, sc.name, cp, consul, clients, sc.changes)
		r.Scenarios = append(r.Scenarios, res)
		if err != nil {
			return r, err
		}
		logf("%s: all ACKed p50 %.0f ms p99 %.0f ms", sc.name, res.AllACK.P50, res.AllACK.P99)
		select {
		case err := <-streamErr:
			return r, err
		default:
		}
	}
	r.PeakRSSMiB = round(float64(cp.peakRSS()) / (1 << 20))
	return r, nil
}

func printTable(w io.Writer, rep report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "control-plane scale, %s, %s\n", rep.Date, rep.Machine)
	for _, r := range rep.Runs {
		fmt.Fprintf(w, "\n%d services (%d instances, %d sidecars), %d proxies connected (%d SotW, %d Delta)\n",
			r.Services, r.Instances, r.Sidecars, r.Proxies, r.SotW, r.Delta)
		fmt.Fprintf(w, "register %.1fs · control plane ready %.1fs · all proxies synced %.1fs (cp CPU %.1fs) · cp RSS %.0f MiB synced, %.0f MiB peak · idle CPU %.1f%%\n",
			r.RegisterS, r.ReadyS, r.SyncS, r.SyncCPUS, r.RSSMiB, r.PeakRSSMiB, r.IdleCPUPct)
		fmt.Fprintln(tw, "change\taffected\tall ACKed p50 ms\tp99\tmax\tper proxy p50\tp99\trebuild ms\tcp CPU ms/change\tconsul CPU ms/change\tSotW B/proxy\tDelta B/proxy\tSotW res/proxy\tDelta res/proxy\t")
		for _, s := range r.Scenarios {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.1f\t\n", s.Name, s.Affected,
				s.AllACK.P50, s.AllACK.P99, s.AllACK.Max, s.PerProxy.P50, s.PerProxy.P99, s.RebuildMs, s.CPUMs, s.ConsulCPUMs,
				s.SotWBytes, s.DeltaBytes, s.SotWResources, s.DeltaResource)
		}
		tw.Flush()
	}
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = ", load " + strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("%s, %d cores%s", model, runtime.NumCPU(), load)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

type stringList []string

func (l *stringList) String() string { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	*l = append(*l, v)
	return nil
}
