package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSummarize(t *testing.T) {
	all := map[string][]round{
		"direct":  {{RPS: 100, P50US: 10, P99US: 100}, {RPS: 300, P50US: 30, P99US: 300}, {RPS: 200, P50US: 20, P99US: 200}},
		"sidecar": {{CPUPerReqUS: 30, P50US: 15, P99US: 110}, {CPUPerReqUS: 10, P50US: 40, P99US: 330}, {CPUPerReqUS: 20, P50US: 26, P99US: 290}},
		"nginx":   {{CPUPerReqUS: 10}, {CPUPerReqUS: 5}, {CPUPerReqUS: 15}},
	}
	tests := []struct {
		name                      string
		target                    string
		wantCPU, wantP50, wantP99 float64
		wantAddedP50, wantAdded99 float64
		wantVs                    map[string]float64
	}{
		// Per-round differences: p50 5, 10, 6 → 6; p99 10, 30, 90 → 30.
		{name: "sidecar against direct and nginx", target: "sidecar", wantCPU: 20, wantP50: 26, wantP99: 290,
			wantAddedP50: 6, wantAdded99: 30, wantVs: map[string]float64{"nginx": 2}},
		{name: "direct has no added latency", target: "direct", wantP50: 20, wantP99: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := summarize(tt.target, false, all, 0)
			got := []float64{s.Median.CPUPerReqUS, s.Median.P50US, s.Median.P99US, s.AddedP50US, s.AddedP99US}
			want := []float64{tt.wantCPU, tt.wantP50, tt.wantP99, tt.wantAddedP50, tt.wantAdded99}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("cpu, p50, p99, +p50, +p99 (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantVs, s.CPUvs); d != "" {
				t.Errorf("CPU ratios (-want +got):\n%s", d)
			}
		})
	}
}

func TestMedianEven(t *testing.T) {
	rs := []round{{RPS: 4}, {RPS: 1}, {RPS: 3}, {RPS: 2}}
	if got := median(rs, func(r round) float64 { return r.RPS }); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	if got := median(nil, func(r round) float64 { return r.RPS }); got != 0 {
		t.Errorf("median of nothing = %v, want 0", got)
	}
}

func TestPrintTables(t *testing.T) {
	all := map[string][]round{"direct": {{RPS: 1000}}, "nginx": {{RPS: 900, CPUPerReqUS: 13, CoreBusy: 0.5}}}
	res := &result{Targets: []summary{summarize("direct", false, all, 0), summarize("nginx", false, all, 8)}}
	var b bytes.Buffer
	printTables(&b, res)
	for _, want := range []string{"direct", "nginx", "13.0", "50%"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestTwoHop(t *testing.T) {
	ts := []summary{
		{Name: "sidecar", Median: round{CPUPerReqUS: 50, RateCPUPerReqUS: 80}, AddedP50US: 100, AddedP99US: 1000},
		{Name: "sidecar-2hop", Median: round{CPUPerReqUS: 125, RateCPUPerReqUS: 156}, AddedP50US: 190},
	}
	want := "two hops ÷ one hop: CPU/req 2.50× at max load, 1.95× at the constant rate; added p50 1.90×, added p99 0.00×"
	if got := twoHop(ts); got != want {
		t.Errorf("twoHop =\n%s\nwant\n%s", got, want)
	}
	if got := twoHop(ts[:1]); got != "" {
		t.Errorf("twoHop without sidecar-2hop = %q, want nothing", got)
	}
}
