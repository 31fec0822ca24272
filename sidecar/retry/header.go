package retry

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// headersMatch reports whether any matcher matches h (retriable_headers).
func headersMatch(ms []config.HeaderMatcher, h http.Header) bool {
	for i := range ms {
		if headerMatches(&ms[i], h) {
			return true
		}
	}
	return false
}

// headerMatches applies an Envoy HeaderMatcher to response headers:
// several values are joined with "," as Envoy does; an absent header
// matches only the "absent" encoding (present_match false, see
// config.HeaderMatcher).
func headerMatches(m *config.HeaderMatcher, h http.Header) bool {
	vs := h.Values(m.Name)
	if len(vs) == 0 {
		return m.Match.Kind == config.MatchPresent && m.Invert
	}
	return stringMatches(&m.Match, strings.Join(vs, ",")) != m.Invert
}

func stringMatches(s *config.StringMatcher, v string) bool {
	want := s.Value
	if s.IgnoreCase {
		v, want = strings.ToLower(v), strings.ToLower(want)
	}
	switch s.Kind {
	case config.MatchExact:
		return v == want
	case config.MatchPrefix:
		return strings.HasPrefix(v, want)
	case config.MatchSuffix:
		return strings.HasSuffix(v, want)
	case config.MatchContains:
		return strings.Contains(v, want)
	case config.MatchRegex:
		return s.Regex != nil && s.Regex.MatchString(v)
	case config.MatchPresent:
		return true
	}
	return false
}

// RateLimitedBackoff is rate_limited_retry_back_off: the wait the first
// parseable reset header of h asks for (Retry-After in seconds, or a Unix
// timestamp), skipping values above max_interval, plus a random jitter of
// up to half of it (Envoy's jittered lower-bound back-off). ok is false
// when the policy has none or no header qualifies: the exponential
// back-off applies then.
func RateLimitedBackoff(p *config.RetryPolicy, h http.Header, now time.Time, randN func(int64) int64) (d time.Duration, ok bool) {
	if p == nil || p.RateLimitedBackOff == nil || h == nil {
		return 0, false
	}
	rl := p.RateLimitedBackOff
	for _, rh := range rl.ResetHeaders {
		v := strings.TrimSpace(h.Get(rh.Name))
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		var wait time.Duration
		if rh.UnixTimestamp {
			wait = time.Unix(n, 0).Sub(now)
			if wait < 0 {
				continue
			}
		} else {
			if n > int64(rl.MaxInterval/time.Second)+1 {
				continue
			}
			wait = time.Duration(n) * time.Second
		}
		if wait > rl.MaxInterval {
			continue
		}
		if half := int64(wait / 2); half > 0 {
			wait += time.Duration(randN(half))
		}
		return wait, true
	}
	return 0, false
}
