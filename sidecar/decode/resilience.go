package decode

import (
	"fmt"
	"net/http"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// defaultRateLimitedMaxInterval is RateLimitedRetryBackOff.max_interval's
// default.
const defaultRateLimitedMaxInterval = 300 * time.Second

// retryPolicyExtras decodes the RetryPolicy fields of the resilience work:
// retriable_headers and rate_limited_retry_back_off.
func retryPolicyExtras(p *routev3.RetryPolicy, out *config.RetryPolicy) error {
	for i, h := range p.GetRetriableHeaders() {
		m, err := headerMatcher(h)
		if err != nil {
			return fmt.Errorf("retriable_headers[%d]: %w", i, err)
		}
		out.RetriableHeaders = append(out.RetriableHeaders, m)
	}
	rl := p.GetRateLimitedRetryBackOff()
	if rl == nil {
		return nil
	}
	b := &config.RateLimitedBackOff{MaxInterval: duration(rl.GetMaxInterval(), defaultRateLimitedMaxInterval)}
	if b.MaxInterval <= 0 {
		return fmt.Errorf("rate_limited_retry_back_off.max_interval must be > 0")
	}
	if len(rl.GetResetHeaders()) == 0 {
		return fmt.Errorf("rate_limited_retry_back_off.reset_headers: at least one is required")
	}
	for i, h := range rl.GetResetHeaders() {
		if h.GetName() == "" {
			return fmt.Errorf("rate_limited_retry_back_off.reset_headers[%d].name is required", i)
		}
		rh := config.ResetHeader{Name: http.CanonicalHeaderKey(h.GetName())}
		switch h.GetFormat() {
		case routev3.RetryPolicy_SECONDS:
		case routev3.RetryPolicy_UNIX_TIMESTAMP:
			rh.UnixTimestamp = true
		default:
			return fmt.Errorf("rate_limited_retry_back_off.reset_headers[%d].format %v is not supported", i, h.GetFormat())
		}
		b.ResetHeaders = append(b.ResetHeaders, rh)
	}
	out.RateLimitedBackOff = b
	return nil
}
