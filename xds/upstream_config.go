package xds

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
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
		var raw struct {
			MaxConnections        *json.Number `json:"max_connections"`
			MaxPendingRequests    *json.Number `json:"max_pending_requests"`
			MaxConcurrentRequests *json.Number `json:"max_concurrent_requests"`
		}
		if err := strictJSON(v, &raw); err != nil {
			return out, fmt.Errorf("upstream Config[%s]: %w", upstreamLimits, err)
		}
		l := &mesh.UpstreamLimits{}
		for _, f := range []struct {
			n   *json.Number
			dst **int
			key string
		}{{raw.MaxConnections, &l.MaxConnections, "max_connections"}, {raw.MaxPendingRequests, &l.MaxPendingRequests, "max_pending_requests"},
			{raw.MaxConcurrentRequests, &l.MaxConcurrentRequests, "max_concurrent_requests"}} {
			if f.n == nil {
				continue
			}
			n, err := configInt(upstreamLimits+"."+f.key, f.n.String())
			if err != nil {
				return out, err
			}
			*f.dst = &n
		}
		out.Limits = l
	}
	if v, ok := u.Config[upstreamPassiveHealthCheck]; ok {
		var raw struct {
			Interval                json.RawMessage `json:"interval"`
			MaxFailures             *json.Number    `json:"max_failures"`
			EnforcingConsecutive5xx *json.Number    `json:"enforcing_consecutive_5xx"`
			MaxEjectionPercent      *json.Number    `json:"max_ejection_percent"`
			BaseEjectionTime        json.RawMessage `json:"base_ejection_time"`
		}
		key := "upstream Config[" + upstreamPassiveHealthCheck + "]"
		if err := strictJSON(v, &raw); err != nil {
			return out, fmt.Errorf("%s: %w", key, err)
		}
		p := &mesh.PassiveHealthCheck{}
		var err error
		if p.Interval, err = jsonDuration(raw.Interval); err != nil {
			return out, fmt.Errorf("%s.interval: %w", key, err)
		}
		if raw.BaseEjectionTime != nil {
			d, err := jsonDuration(raw.BaseEjectionTime)
			if err != nil {
				return out, fmt.Errorf("%s.base_ejection_time: %w", key, err)
			}
			p.BaseEjectionTime = &d
		}
		u32 := func(n *json.Number, name string) (*uint32, error) {
			if n == nil {
				return nil, nil
			}
			f, err := strconv.ParseFloat(n.String(), 64)
			if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
				return nil, fmt.Errorf("%s.%s: %s is not a non-negative whole number", key, name, n)
			}
			v := uint32(f)
			return &v, nil
		}
		mf, err := u32(raw.MaxFailures, "max_failures")
		if err != nil {
			return out, err
		}
		if mf != nil {
			p.MaxFailures = *mf
		}
		if p.EnforcingConsecutive5xx, err = u32(raw.EnforcingConsecutive5xx, "enforcing_consecutive_5xx"); err != nil {
			return out, err
		}
		if p.MaxEjectionPercent, err = u32(raw.MaxEjectionPercent, "max_ejection_percent"); err != nil {
			return out, err
		}
		out.PassiveHealthCheck = p
	}
	return out, nil
}

// strictJSON decodes an object, refusing unknown keys (a typo must not
// silently do nothing).
func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	return dec.Decode(v)
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
