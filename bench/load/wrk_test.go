package load

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want WrkResult
	}{
		{
			name: "clean",
			out: `Running 5s test @ http://127.0.0.1:8080/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   1.20ms  300.00us   9.00ms   90.00%
    Req/Sec    26.71k     1.02k   28.00k    80.00%
  132911 requests in 5.00s, 152.10MB read
Requests/sec:  26582.20
Transfer/sec:     30.42MB
`,
			want: WrkResult{Requests: 132911, Elapsed: 5 * time.Second, RPS: 26582.20},
		},
		{
			name: "errors",
			out: `  1000 requests in 500.00ms, 1.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   2000.00
`,
			want: WrkResult{Requests: 1000, Elapsed: 500 * time.Millisecond, RPS: 2000, Errors: 12},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWrk(tt.out)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseWrk (-want +got):\n%s", d)
			}
		})
	}
	if _, err := ParseWrk("garbage"); err == nil {
		t.Error("ParseWrk(garbage): want an error")
	}
}

func TestQuantile(t *testing.T) {
	l := Latencies{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.9, 9}, {0.99, 10}, {0, 1}, {1, 10}} {
		if got := l.Quantile(tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := Latencies(nil).Quantile(0.5); got != 0 {
		t.Errorf("empty Quantile = %v, want 0", got)
	}
}
