package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
)

type machineInfo struct {
	NProc        int    `json:"nproc"`
	CPUModel     string `json:"cpu_model"`
	Kernel       string `json:"kernel"`
	Go           string `json:"go"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

type summary struct {
	Name       string  `json:"name"`
	GRPC       bool    `json:"grpc,omitempty"`
	Median     round   `json:"median"`
	RSSIdleMiB float64 `json:"rss_idle_mib"`
	// Its anonymous and file-backed parts.
	RSSIdleAnonMiB float64 `json:"rss_idle_anon_mib"`
	RSSIdleFileMiB float64 `json:"rss_idle_file_mib"`
	// Added latency over direct (grpc-direct for gRPC), median of the
	// per-round differences.
	AddedP50US float64 `json:"added_p50_us"`
	AddedP90US float64 `json:"added_p90_us"`
	AddedP99US float64 `json:"added_p99_us"`
	// CPUvs is this target's proxy CPU per request over each peer's.
	CPUvs  map[string]float64 `json:"cpu_per_req_ratio_to"`
	Rounds []round            `json:"rounds"`
}

type result struct {
	Date     string            `json:"date"`
	Machine  machineInfo       `json:"machine"`
	Tools    map[string]string `json:"tools"`
	Settings settings          `json:"settings"`
	Targets  []summary         `json:"targets"`
	Many     *manyResult       `json:"many,omitempty"`
}

func median(rs []round, f func(round) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func summarize(name string, grpc bool, all map[string][]round, idle float64) summary {
	rs := all[name]
	m := func(f func(round) float64) float64 { return median(rs, f) }
	s := summary{Name: name, GRPC: grpc, Rounds: rs, RSSIdleMiB: idle}
	s.Median = round{
		RPS:             m(func(r round) float64 { return r.RPS }),
		Requests:        int64(m(func(r round) float64 { return float64(r.Requests) })),
		Errors:          int64(m(func(r round) float64 { return float64(r.Errors) })),
		CPUPerReqUS:     m(func(r round) float64 { return r.CPUPerReqUS }),
		CoreBusy:        m(func(r round) float64 { return r.CoreBusy }),
		RateCPUPerReqUS: m(func(r round) float64 { return r.RateCPUPerReqUS }),
		UpstreamCPUUS:   m(func(r round) float64 { return r.UpstreamCPUUS }),
		RSSLoadMiB:      m(func(r round) float64 { return r.RSSLoadMiB }),
		P50US:           m(func(r round) float64 { return r.P50US }),
		P90US:           m(func(r round) float64 { return r.P90US }),
		P99US:           m(func(r round) float64 { return r.P99US }),
		MaxUS:           m(func(r round) float64 { return r.MaxUS }),
		RateErrors:      int(m(func(r round) float64 { return float64(r.RateErrors) })),
		RateLate:        int(m(func(r round) float64 { return float64(r.RateLate) })),
		RateSamples:     int(m(func(r round) float64 { return float64(r.RateSamples) })),
	}
	base := "direct"
	if grpc {
		base = "grpc-direct"
	}
	if d, ok := all[base]; ok && name != base {
		added := func(f func(round) float64) float64 {
			var diffs []round
			for i := range min(len(rs), len(d)) {
				diffs = append(diffs, round{P50US: f(rs[i]) - f(d[i])})
			}
			return median(diffs, func(r round) float64 { return r.P50US })
		}
		s.AddedP50US = added(func(r round) float64 { return r.P50US })
		s.AddedP90US = added(func(r round) float64 { return r.P90US })
		s.AddedP99US = added(func(r round) float64 { return r.P99US })
	}
	if !grpc && name != "direct" {
		s.CPUvs = map[string]float64{}
		for _, peer := range []string{"nginx", "haproxy", "caddy", "sidecar"} {
			if p, ok := all[peer]; ok && peer != name {
				if c := median(p, func(r round) float64 { return r.CPUPerReqUS }); c > 0 {
					s.CPUvs[peer] = s.Median.CPUPerReqUS / c
				}
			}
		}
	}
	return s
}

func printTables(w io.Writer, res *result) {
	fmt.Fprintf(w, "%s — %d CPUs, %s, %s, %s; load average %s → %s\n", res.Date, res.Machine.NProc,
		res.Machine.CPUModel, res.Machine.Kernel, res.Machine.Go, res.Machine.LoadAvgStart, res.Machine.LoadAvgEnd)
	fmt.Fprintf(w, "medians of %d rounds; wrk -t1 -c%d %s; latency at %d req/s for %s\n\n",
		res.Settings.Rounds, res.Settings.Conns, res.Settings.Duration, res.Settings.Rate, res.Settings.RateDuration)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\treq/s\t÷ direct\tproxy CPU µs/req\tcore busy\t× nginx\t× haproxy\tCPU µs/req @rate\tp50 µs\tp90 µs\tp99 µs\t+p50\t+p99\tRSS idle MiB\tRSS load MiB\t")
	var direct float64
	for _, t := range res.Targets {
		if t.Name == "direct" {
			direct = t.Median.RPS
		}
	}
	for _, t := range res.Targets {
		if t.GRPC {
			continue
		}
		m := t.Median
		rel := "—"
		if direct > 0 {
			rel = fmt.Sprintf("%.2f", m.RPS/direct)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n", t.Name, m.RPS, rel,
			opt(m.CPUPerReqUS, "%.1f"), pct(m.CoreBusy, t.Name), ratio(t.CPUvs, "nginx"), ratio(t.CPUvs, "haproxy"),
			opt(m.RateCPUPerReqUS, "%.1f"), m.P50US, m.P90US, m.P99US, signed(t.Name, t.AddedP50US, direct > 0), signed(t.Name, t.AddedP99US, direct > 0),
			opt(t.RSSIdleMiB, "%.1f"), opt(m.RSSLoadMiB, "%.1f"))
	}
	tw.Flush()
	if h := twoHop(res.Targets); h != "" {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	grpcBase := false
	for _, t := range res.Targets {
		grpcBase = grpcBase || t.Name == "grpc-direct"
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "gRPC unary\tcalls/s\tproxy CPU µs/call\tcore busy\tp50 µs\tp90 µs\tp99 µs\t+p50\t+p99\t")
	for _, t := range res.Targets {
		if !t.GRPC {
			continue
		}
		m := t.Median
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t\n", t.Name, m.RPS, opt(m.CPUPerReqUS, "%.1f"),
			pct(m.CoreBusy, t.Name), m.P50US, m.P90US, m.P99US, signed(t.Name, t.AddedP50US, grpcBase), signed(t.Name, t.AddedP99US, grpcBase))
	}
	tw.Flush()
	var split []string
	for _, t := range res.Targets {
		if t.RSSIdleAnonMiB+t.RSSIdleFileMiB > 0 {
			split = append(split, fmt.Sprintf("%s %.1f + %.1f", t.Name, t.RSSIdleAnonMiB, t.RSSIdleFileMiB))
		}
	}
	if len(split) > 0 {
		fmt.Fprintf(w, "\nRSS idle, anonymous + file-backed MiB: %s\n", strings.Join(split, ", "))
	}
	if res.Many != nil && res.Many.Error != "" {
		fmt.Fprintf(w, "\nsidecar with %d routes and clusters: %s\n", res.Many.Routes, res.Many.Error)
	} else if res.Many != nil {
		m := res.Many
		fmt.Fprintf(w, "\nsidecar with %d routes and %d clusters: ready in %.0f ms, RSS %.1f MiB = %.1f anonymous + %.1f file-backed (%.1f = %.1f + %.1f MiB after 500 requests over 500 hosts)\n",
			m.Routes, m.Clusters, m.ReadyMS, m.RSSMiB, m.AnonMiB, m.FileMiB, m.RSSServeMiB, m.AnonServeMiB, m.FileServeMiB)
	}
}

// twoHop compares the mesh's two hops with one: proxy CPU per request at
// max load and at the constant rate, and the latency added at the rate.
// At max load one hop batches more ready connections per wake-up than
// each of two sidecars sharing its core, so the constant-rate CPU ratio is
// the like-for-like one.
func twoHop(ts []summary) string {
	var one, two *summary
	for i := range ts {
		switch ts[i].Name {
		case "sidecar":
			one = &ts[i]
		case "sidecar-2hop":
			two = &ts[i]
		}
	}
	if one == nil || two == nil || one.Median.CPUPerReqUS == 0 {
		return ""
	}
	div := func(a, b float64) string {
		if b == 0 {
			return "—"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	return fmt.Sprintf("two hops ÷ one hop: CPU/req %s at max load, %s at the constant rate; added p50 %s, added p99 %s",
		div(two.Median.CPUPerReqUS, one.Median.CPUPerReqUS),
		div(two.Median.RateCPUPerReqUS, one.Median.RateCPUPerReqUS),
		div(two.AddedP50US, one.AddedP50US), div(two.AddedP99US, one.AddedP99US))
}

func opt(v float64, f string) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf(f, v)
}

func pct(v float64, name string) string {
	if name == "direct" || name == "grpc-direct" {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

func ratio(m map[string]float64, k string) string {
	if v, ok := m[k]; ok {
		return fmt.Sprintf("%.2f", v)
	}
	return "—"
}

func signed(name string, v float64, hasBase bool) string {
	if name == "direct" || name == "grpc-direct" || !hasBase {
		return "—"
	}
	return fmt.Sprintf("%+.0f", v)
}

func writeJSON(path string, res *result) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func machine() machineInfo {
	m := machineInfo{Go: runtime.Version()}
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "processor") {
			m.NProc++
		}
		if v, ok := strings.CutPrefix(l, "model name"); ok && m.CPUModel == "" {
			m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	k, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	m.Kernel = "Linux " + strings.TrimSpace(string(k))
	return m
}

// versions records the peers' and wrk's versions, first line each.
func versions() map[string]string {
	out := map[string]string{}
	for name, argv := range map[string][]string{
		"nginx": {"nginx", "-v"}, "haproxy": {"haproxy", "-v"}, "caddy": {"caddy", "version"}, "wrk": {"wrk", "-v"},
	} {
		b, _ := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		out[name] = line
	}
	return out
}
