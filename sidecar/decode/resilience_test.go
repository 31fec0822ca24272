package decode_test

import (
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/decode"
)

func TestResilienceRouteFields(t *testing.T) {
	withPolicy := func(p *routev3.RetryPolicy) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "rc", VirtualHosts: []*routev3.VirtualHost{{
			Name: "vh", Domains: []string{"*"}, PerRequestBufferLimitBytes: wrapperspb.UInt32(4096),
			IncludeRequestAttemptCount: true, IncludeAttemptCountInResponse: true,
			Routes: []*routev3.Route{{
				Match:                      &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				PerRequestBufferLimitBytes: wrapperspb.UInt32(1024),
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, RetryPolicy: p,
				}},
			}},
		}}}
	}
	tests := []struct {
		name    string
		policy  *routev3.RetryPolicy
		want    *config.RetryPolicy
		wantErr string
	}{
		{
			name: "retriable_headers and rate_limited_retry_back_off",
			policy: &routev3.RetryPolicy{
				RetryOn: "retriable-headers,retriable-status-codes", RetriableStatusCodes: []uint32{429},
				RetriableHeaders: []*routev3.HeaderMatcher{{Name: "X-Upstream-Retry", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}},
				RateLimitedRetryBackOff: &routev3.RetryPolicy_RateLimitedRetryBackOff{
					ResetHeaders: []*routev3.RetryPolicy_ResetHeader{
						{Name: "retry-after", Format: routev3.RetryPolicy_SECONDS},
						{Name: "x-ratelimit-reset", Format: routev3.RetryPolicy_UNIX_TIMESTAMP},
					},
				},
			},
			want: &config.RetryPolicy{
				RetryOn: config.RetryRetriableHeaders | config.RetryRetriableStatusCodes, RetriableStatusCodes: []uint32{429},
				NumRetries: 1, BackOffBase: 25 * time.Millisecond, BackOffMax: 250 * time.Millisecond, HostSelectionAttempts: 1,
				RetriableHeaders: []config.HeaderMatcher{{Name: "x-upstream-retry", Match: config.StringMatcher{Kind: config.MatchPresent}}},
				RateLimitedBackOff: &config.RateLimitedBackOff{MaxInterval: 300 * time.Second, ResetHeaders: []config.ResetHeader{
					{Name: "Retry-After"}, {Name: "X-Ratelimit-Reset", UnixTimestamp: true},
				}},
			},
		},
		{
			name: "rate-limited max_interval",
			policy: &routev3.RetryPolicy{RetryOn: "5xx", RateLimitedRetryBackOff: &routev3.RetryPolicy_RateLimitedRetryBackOff{
				ResetHeaders: []*routev3.RetryPolicy_ResetHeader{{Name: "Retry-After"}}, MaxInterval: durationpb.New(time.Minute),
			}},
			want: &config.RetryPolicy{RetryOn: config.Retry5xx, NumRetries: 1, BackOffBase: 25 * time.Millisecond, BackOffMax: 250 * time.Millisecond, HostSelectionAttempts: 1,
				RateLimitedBackOff: &config.RateLimitedBackOff{MaxInterval: time.Minute, ResetHeaders: []config.ResetHeader{{Name: "Retry-After"}}}},
		},
		{
			name:    "reset_headers are required",
			policy:  &routev3.RetryPolicy{RetryOn: "5xx", RateLimitedRetryBackOff: &routev3.RetryPolicy_RateLimitedRetryBackOff{}},
			wantErr: "ResetHeaders",
		},
		{
			name:    "a retriable header needs a name",
			policy:  &routev3.RetryPolicy{RetryOn: "retriable-headers", RetriableHeaders: []*routev3.HeaderMatcher{{}}},
			wantErr: "RetriableHeaders[0]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode.RouteConfiguration(withPolicy(tt.policy))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			vh := got.VirtualHosts[0]
			if vh.PerRequestBufferLimitBytes != 4096 || vh.Routes[0].PerRequestBufferLimitBytes != 1024 {
				t.Errorf("per_request_buffer_limit_bytes: virtual host %d, route %d; want 4096, 1024", vh.PerRequestBufferLimitBytes, vh.Routes[0].PerRequestBufferLimitBytes)
			}
			if !vh.IncludeRequestAttemptCount || !vh.IncludeAttemptCountInResponse {
				t.Error("include_request_attempt_count / include_attempt_count_in_response lost")
			}
			if diff := cmp.Diff(tt.want, vh.Routes[0].Forward.RetryPolicy, regexpEqual); diff != "" {
				t.Errorf("retry policy (-want +got):\n%s", diff)
			}
		})
	}
}
