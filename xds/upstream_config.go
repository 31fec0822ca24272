package xds

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Keys of an upstream's Config in a proxy registration that Consul
// documents ("Upstream configuration reference") and that shape the
// upstream's clusters. They override the service-defaults UpstreamConfig,
// as in Consul.
const (
	upstreamConnectTimeoutMs   = "connect_timeout_ms"
	upstreamLimits             = "limits"
	upstreamPassiveHealthCheck = "passive_health_check"
)

// registrationUpstreamConfig reads an upstream's registration Config. The
// model renders nested values as JSON.
func registrationUpstreamConfig(u mesh.Upstream) (mesh.UpstreamConfig, error) {
	var out mesh.UpstreamConfig
	if v, ok := u.Config[upstreamConnectTimeoutMs]; ok {
		n, err := configInt(upstreamConnectTimeoutMs, v)
		if err != nil {
			return out, err
		}
		out.ConnectTimeout = time.Duration(n) * time.Millisecond
	}
	if v, ok := u.Config[upstreamLimits]; ok {
		key := "upstream Config[" + upstreamLimits + "]"
		fields, err := jsonObject(v, "maxconnections", "maxpendingrequests", "maxconcurrentrequests")
		if err != nil {
			return out, fmt.Errorf("%s: %w", key, err)
		}
		l := &mesh.UpstreamLimits{}
		for name, dst := range map[string]**int{"maxconnections": &l.MaxConnections, "maxpendingrequests": &l.MaxPendingRequests,
			"maxconcurrentrequests": &l.MaxConcurrentRequests} {
			raw, ok := fields[name]
			if !ok {
				continue
			}
			n, err := jsonUint(raw)
			if err != nil {
				return out, fmt.Errorf("%s.%s: %w", key, name, err)
			}
			i := int(n)
			*dst = &i
		}
		out.Limits = l
	}
	if v, ok := u.Config[upstreamPassiveHealthCheck]; ok {
		key := "upstream Config[" + upstreamPassiveHealthCheck + "]"
		fields, err := jsonObject(v, "interval", "maxfailures", "enforcingconsecutive5xx", "maxejectionpercent", "baseejectiontime")
		if err != nil {
			return out, fmt.Errorf("%s: %w", key, err)
		}
		p := &mesh.PassiveHealthCheck{}
		if p.Interval, err = jsonDuration(fields["interval"]); err != nil {
			return out, fmt.Errorf("%s.interval: %w", key, err)
		}
		if raw, ok := fields["baseejectiontime"]; ok {
			d, err := jsonDuration(raw)
			if err != nil {
				return out, fmt.Errorf("%s.base_ejection_time: %w", key, err)
			}
			p.BaseEjectionTime = &d
		}
		if raw, ok := fields["maxfailures"]; ok {
			if p.MaxFailures, err = jsonUint(raw); err != nil {
				return out, fmt.Errorf("%s.max_failures: %w", key, err)
			}
		}
		for name, dst := range map[string]**uint32{"enforcingconsecutive5xx": &p.EnforcingConsecutive5xx, "maxejectionpercent": &p.MaxEjectionPercent} {
			raw, ok := fields[name]
			if !ok {
				continue
			}
			n, err := jsonUint(raw)
			if err != nil {
				return out, fmt.Errorf("%s.%s: %w", key, name, err)
			}
			*dst = &n
		}
		out.PassiveHealthCheck = p
	}
	return out, nil
}

// jsonObject decodes a JSON object whose keys are matched as Consul's
// decoder matches them: case-insensitively and ignoring underscores, so
// that "max_failures" (what users write) and "MaxFailures" (what Consul's
// agent writes when it merges service-defaults into the registration) are
// one key. A key outside want is an error (a typo must not silently do
// nothing); null values are left out.
func jsonObject(s string, want ...string) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(raw))
	for k, v := range raw {
		norm := strings.ToLower(strings.ReplaceAll(k, "_", ""))
		if !slices.Contains(want, norm) {
			return nil, fmt.Errorf("unknown field %q", k)
		}
		if string(v) != "null" {
			out[norm] = v
		}
	}
	return out, nil
}

// jsonUint reads a non-negative whole number below 2^32.
func jsonUint(raw json.RawMessage) (uint32, error) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
		return 0, fmt.Errorf("%s is not a non-negative whole number", raw)
	}
	return uint32(f), nil
}

// jsonDuration reads a duration as Consul accepts it: a string such as
// "10s", or a number of nanoseconds. Absent is zero.
func jsonDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return d, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > math.MaxInt64 {
		return 0, fmt.Errorf("%s is not a duration", raw)
	}
	return time.Duration(f), nil
}

// overlay applies the fields set in top over base (Consul: the upstream's
// registration config wins over service-defaults).
func overlay(base, top mesh.UpstreamConfig) mesh.UpstreamConfig {
	if top.ConnectTimeout > 0 {
		base.ConnectTimeout = top.ConnectTimeout
	}
	if top.Limits != nil {
		base.Limits = top.Limits
	}
	if top.PassiveHealthCheck != nil {
		base.PassiveHealthCheck = top.PassiveHealthCheck
	}
	return base
}
