package xds

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Extension keys: what users need beyond Consul's fields, set in a config
// entry's Meta (or the global proxy-defaults Config), never in a second
// policy store. Every key starts with extPrefix; an unknown key with that
// prefix is an error (a typo must not silently do nothing). The README
// documents each key with an example.
const extPrefix = "consulate_"

// Route keys: service-router Meta (that router's routes), else
// proxy-defaults Config (every route). They shape the retry policy of
// routes whose destination has retries (NumRetries, RetryOn,
// RetryOnConnectFailure or RetryOnStatusCodes).
const (
	KeyRetryBackoffBase      = "consulate_retry_backoff_base"                // duration, Envoy default 25ms
	KeyRetryBackoffMax       = "consulate_retry_backoff_max"                 // duration, Envoy default 10 × base
	KeyRetryPerTryTimeout    = "consulate_retry_per_try_timeout"             // duration, default: the route timeout
	KeyRetryPreviousHosts    = "consulate_retry_previous_hosts"              // bool, default true
	KeyRetryHostSelectionMax = "consulate_retry_host_selection_max_attempts" // int, default 3
)

// Cluster keys: service-resolver Meta of the target service, else its
// service-defaults Meta, else proxy-defaults Config.
const (
	KeyRetryBudgetPercent            = "consulate_retry_budget_percent"                  // float 0-100
	KeyRetryBudgetMinConcurrency     = "consulate_retry_budget_min_concurrency"          // int, Envoy default 3
	KeyConsecutiveGatewayFailure     = "consulate_consecutive_gateway_failure"           // int
	KeyEnforcingConsecutiveGateway   = "consulate_enforcing_consecutive_gateway_failure" // 0-100, default 100 when the above is set
	KeySuccessRateMinimumHosts       = "consulate_success_rate_minimum_hosts"            // int, Envoy default 5
	KeySuccessRateRequestVolume      = "consulate_success_rate_request_volume"           // int, Envoy default 100
	KeySuccessRateStdevFactor        = "consulate_success_rate_stdev_factor"             // int (÷1000), Envoy default 1900
	KeyEnforcingSuccessRate          = "consulate_enforcing_success_rate"                // 0-100, Envoy default 100
	KeyFailurePercentageThreshold    = "consulate_failure_percentage_threshold"          // 0-100, Envoy default 85
	KeyEnforcingFailurePercentage    = "consulate_enforcing_failure_percentage"          // 0-100, default 100 when the threshold is set
	KeyFailurePercentageMinimumHosts = "consulate_failure_percentage_minimum_hosts"      // int, Envoy default 5
	KeyFailurePercentageRequestVol   = "consulate_failure_percentage_request_volume"     // int, Envoy default 50
	KeyMaxEjectionTime               = "consulate_max_ejection_time"                     // duration, Envoy default 300s
	KeyHealthyPanicThreshold         = "consulate_healthy_panic_threshold"               // float 0-100, Envoy default 50
)

type extScope int

const (
	scopeRoute extScope = iota
	scopeCluster
	scopeEndpoints // IncludeWarningKey
)

type extKind int

const (
	extDuration extKind = iota
	extBool
	extUint
	extPercent // 0-100 float
	extPercentInt
)

var extKeys = map[string]struct {
	scope extScope
	kind  extKind
}{
	KeyRetryBackoffBase:              {scopeRoute, extDuration},
	KeyRetryBackoffMax:               {scopeRoute, extDuration},
	KeyRetryPerTryTimeout:            {scopeRoute, extDuration},
	KeyRetryPreviousHosts:            {scopeRoute, extBool},
	KeyRetryHostSelectionMax:         {scopeRoute, extUint},
	KeyRetryBudgetPercent:            {scopeCluster, extPercent},
	KeyRetryBudgetMinConcurrency:     {scopeCluster, extUint},
	KeyConsecutiveGatewayFailure:     {scopeCluster, extUint},
	KeyEnforcingConsecutiveGateway:   {scopeCluster, extPercentInt},
	KeySuccessRateMinimumHosts:       {scopeCluster, extUint},
	KeySuccessRateRequestVolume:      {scopeCluster, extUint},
	KeySuccessRateStdevFactor:        {scopeCluster, extUint},
	KeyEnforcingSuccessRate:          {scopeCluster, extPercentInt},
	KeyFailurePercentageThreshold:    {scopeCluster, extPercentInt},
	KeyEnforcingFailurePercentage:    {scopeCluster, extPercentInt},
	KeyFailurePercentageMinimumHosts: {scopeCluster, extUint},
	KeyFailurePercentageRequestVol:   {scopeCluster, extUint},
	KeyMaxEjectionTime:               {scopeCluster, extDuration},
	KeyHealthyPanicThreshold:         {scopeCluster, extPercent},
	IncludeWarningKey:                {scopeEndpoints, extBool},
}

// extValue is one parsed key.
type extValue struct {
	d time.Duration
	b bool
	u uint32
	f float64
}

// extSet is the parsed keys of one scope, later sources overriding
// earlier ones.
type extSet map[string]extValue

func (s extSet) duration(key string) (time.Duration, bool) { v, ok := s[key]; return v.d, ok }
func (s extSet) uint(key string) (uint32, bool)            { v, ok := s[key]; return v.u, ok }
func (s extSet) float(key string) (float64, bool)          { v, ok := s[key]; return v.f, ok }
func (s extSet) boolean(key string, def bool) bool {
	if v, ok := s[key]; ok {
		return v.b
	}
	return def
}

// extSource is one map of keys and where it came from.
type extSource struct {
	entry  mesh.EntryRef
	field  string // "Meta" or "Config"
	values map[string]string
	scopes []extScope // the scopes this source may set
}

// parseExt reads the keys of scope from sources, in order (later wins).
// Every key with extPrefix in a source is checked, whatever scope is
// asked for, so that an unknown or misplaced key is an error wherever the
// entry is used.
func parseExt(scope extScope, sources ...extSource) (extSet, error) {
	out := extSet{}
	for _, src := range sources {
		keys := make([]string, 0, len(src.values))
		for k := range src.values {
			if strings.HasPrefix(k, extPrefix) {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			field := fmt.Sprintf("%s[%s]", src.field, k)
			spec, ok := extKeys[k]
			if !ok {
				return nil, &EntryError{Entry: src.entry, Field: field, Err: fmt.Errorf("unknown extension key (see the README's \"Policy: Consul config entries\")")}
			}
			if !slices.Contains(src.scopes, spec.scope) {
				return nil, &EntryError{Entry: src.entry, Field: field, Err: fmt.Errorf("this key does not apply to a %s entry", src.entry.Kind)}
			}
			if spec.scope != scope {
				continue // its value is checked where its scope is read
			}
			v, err := parseExtValue(spec.kind, src.values[k])
			if err != nil {
				return nil, &EntryError{Entry: src.entry, Field: field, Err: err}
			}
			out[k] = v
		}
	}
	return out, nil
}

func parseExtValue(kind extKind, s string) (extValue, error) {
	s = strings.TrimSpace(s)
	switch kind {
	case extDuration:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return extValue{}, fmt.Errorf("%q is not a positive duration such as 250ms", s)
		}
		return extValue{d: d}, nil
	case extBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return extValue{}, fmt.Errorf("%q is not true or false", s)
		}
		return extValue{b: b}, nil
	case extUint, extPercentInt:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
			return extValue{}, fmt.Errorf("%q is not a non-negative whole number", s)
		}
		if kind == extPercentInt && f > 100 {
			return extValue{}, fmt.Errorf("%q is not a percentage (0-100)", s)
		}
		return extValue{u: uint32(f)}, nil
	case extPercent:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 100 || math.IsNaN(f) {
			return extValue{}, fmt.Errorf("%q is not a percentage (0-100)", s)
		}
		return extValue{f: f}, nil
	}
	return extValue{}, fmt.Errorf("unknown kind")
}

var globalProxyDefaults = mesh.EntryRef{Kind: mesh.KindProxyDefaults, Name: "global"}

func proxyDefaultsSource(cfg *mesh.Config) []extSource {
	if cfg.ProxyDefaults == nil {
		return nil
	}
	return []extSource{{entry: globalProxyDefaults, field: "Config", values: cfg.ProxyDefaults.Config,
		scopes: []extScope{scopeRoute, scopeCluster, scopeEndpoints}}}
}

// routeExt are the route keys for the chain of service.
func routeExt(cfg *mesh.Config, service string) (extSet, error) {
	srcs := proxyDefaultsSource(cfg)
	if r := cfg.Routers[service]; r != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: service}, field: "Meta",
			values: r.Meta, scopes: []extScope{scopeRoute}})
	}
	return parseExt(scopeRoute, srcs...)
}

// clusterExt are the cluster keys of a target service.
func clusterExt(cfg *mesh.Config, service string) (extSet, error) {
	srcs := proxyDefaultsSource(cfg)
	if sd := cfg.ServiceDefaults[service]; sd != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceDefaults, Name: service}, field: "Meta",
			values: sd.Meta, scopes: []extScope{scopeCluster, scopeEndpoints}})
	}
	if r := cfg.Resolvers[service]; r != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: service}, field: "Meta",
			values: r.Meta, scopes: []extScope{scopeCluster}})
	}
	return parseExt(scopeCluster, srcs...)
}
