package retry

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestRetriableHeaders(t *testing.T) {
	present := config.HeaderMatcher{Name: "x-retry-me", Match: config.StringMatcher{Kind: config.MatchPresent}}
	exact := config.HeaderMatcher{Name: "x-status", Match: config.StringMatcher{Kind: config.MatchExact, Value: "Busy", IgnoreCase: true}}
	regex := config.HeaderMatcher{Name: "x-status", Match: config.StringMatcher{Kind: config.MatchRegex, Regex: regexp.MustCompile(`^try-\d+$`)}}
	absent := config.HeaderMatcher{Name: "x-ok", Match: config.StringMatcher{Kind: config.MatchPresent}, Invert: true}
	tests := []struct {
		name string
		ms   []config.HeaderMatcher
		h    http.Header
		want bool
	}{
		{"present header", []config.HeaderMatcher{present}, http.Header{"X-Retry-Me": {"1"}}, true},
		{"missing header", []config.HeaderMatcher{present}, http.Header{}, false},
		{"exact ignoring case", []config.HeaderMatcher{exact}, http.Header{"X-Status": {"busy"}}, true},
		{"exact mismatch", []config.HeaderMatcher{exact}, http.Header{"X-Status": {"idle"}}, false},
		{"regex", []config.HeaderMatcher{regex}, http.Header{"X-Status": {"try-42"}}, true},
		{"any of several", []config.HeaderMatcher{exact, present}, http.Header{"X-Retry-Me": {""}}, true},
		{"absent matcher on an absent header", []config.HeaderMatcher{absent}, http.Header{}, true},
		{"absent matcher on a present header", []config.HeaderMatcher{absent}, http.Header{"X-Ok": {"1"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &config.RetryPolicy{RetryOn: config.RetryRetriableHeaders, RetriableHeaders: tt.ms}
			if got := Retriable(p, ResponseOutcome(200, tt.h)); got != tt.want {
				t.Errorf("Retriable = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRateLimitedBackoff(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	rl := &config.RateLimitedBackOff{MaxInterval: 300 * time.Second, ResetHeaders: []config.ResetHeader{
		{Name: "Retry-After"}, {Name: "X-Ratelimit-Reset", UnixTimestamp: true},
	}}
	p := &config.RetryPolicy{RateLimitedBackOff: rl}
	tests := []struct {
		name   string
		p      *config.RetryPolicy
		h      http.Header
		lo, hi time.Duration // [lo, hi]
		ok     bool
	}{
		{"Retry-After seconds", p, http.Header{"Retry-After": {"2"}}, 2 * time.Second, 3 * time.Second, true},
		{"Retry-After zero", p, http.Header{"Retry-After": {"0"}}, 0, 0, true},
		{"unix timestamp", p, http.Header{"X-Ratelimit-Reset": {"1700000010"}}, 10 * time.Second, 15 * time.Second, true},
		{"first header wins", p, http.Header{"Retry-After": {"1"}, "X-Ratelimit-Reset": {"1700000100"}}, time.Second, 1500 * time.Millisecond, true},
		{"unparseable falls through to the next", p, http.Header{"Retry-After": {"Wed, 21 Oct 2015 07:28:00 GMT"}, "X-Ratelimit-Reset": {"1700000004"}}, 4 * time.Second, 6 * time.Second, true},
		{"above max_interval is discarded", p, http.Header{"Retry-After": {"301"}}, 0, 0, false},
		{"timestamp in the past is discarded", p, http.Header{"X-Ratelimit-Reset": {"1600000000"}}, 0, 0, false},
		{"no reset header", p, http.Header{}, 0, 0, false},
		{"no rate-limited policy", &config.RetryPolicy{}, http.Header{"Retry-After": {"2"}}, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, rnd := range []func(int64) int64{zeroRand, maxRand} {
				d, ok := RateLimitedBackoff(tt.p, tt.h, now, rnd)
				if ok != tt.ok || d < tt.lo || d > tt.hi {
					t.Errorf("RateLimitedBackoff = %v, %v; want %v in [%v, %v]", d, ok, tt.ok, tt.lo, tt.hi)
				}
			}
		})
	}
}
