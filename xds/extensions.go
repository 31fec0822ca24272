package xds

import (
	"fmt"
	"time"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Extension keys: what users need beyond Consul's fields, set in a config
// entry's Meta (or the global proxy-defaults Config), never in a second
// policy store. The registry (scope, value type) is the model's
// (mesh.LookupExtensionKey); an unknown key with the "consulate_" prefix is
// an error (a typo must not silently do nothing). The README documents
// each key with an example.

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

// extSet is the parsed keys of one scope, later sources overriding
// earlier ones.
type extSet map[string]mesh.ExtensionValue

func (s extSet) duration(key string) (time.Duration, bool) { v, ok := s[key]; return v.Duration, ok }
func (s extSet) uint(key string) (uint32, bool)            { v, ok := s[key]; return v.Uint, ok }
func (s extSet) float(key string) (float64, bool)          { v, ok := s[key]; return v.Percent, ok }
func (s extSet) boolean(key string, def bool) bool {
	if v, ok := s[key]; ok {
		return v.Bool
	}
	return def
}

// extSource is one map of keys and the entry it came from.
type extSource struct {
	entry  mesh.EntryRef
	field  string // "Meta" or "Config"
	values map[string]string
}

// parseExt reads the keys of scope from sources, in order (later wins).
// Every key with the prefix in a source is checked (known, allowed for
// the entry's kind, well-formed: mesh.CheckExtensionKeys; discovery
// already refuses such entries, this guards any other producer of the
// model), so that a wrong key is an error wherever the entry is used.
func parseExt(scope mesh.ExtensionScope, sources ...extSource) (extSet, error) {
	out := extSet{}
	for _, src := range sources {
		if key, err := mesh.CheckExtensionKeys(src.entry.Kind, src.values); err != nil {
			return nil, &EntryError{Entry: src.entry, Field: fmt.Sprintf("%s[%s]", src.field, key), Err: err}
		}
		for k, raw := range src.values {
			spec, ok := mesh.LookupExtensionKey(k)
			if !ok || spec.Scope != scope {
				continue
			}
			v, err := mesh.ParseExtensionValue(spec.Kind, raw)
			if err != nil { // checked above
				return nil, &EntryError{Entry: src.entry, Field: fmt.Sprintf("%s[%s]", src.field, k), Err: err}
			}
			out[k] = v
		}
	}
	return out, nil
}

var globalProxyDefaults = mesh.EntryRef{Kind: mesh.KindProxyDefaults, Name: "global"}

func proxyDefaultsSource(cfg *mesh.Config) []extSource {
	if cfg.ProxyDefaults == nil {
		return nil
	}
	return []extSource{{entry: globalProxyDefaults, field: "Config", values: cfg.ProxyDefaults.Config}}
}

// routeExt are the route keys for the chain of service.
func routeExt(cfg *mesh.Config, service string) (extSet, error) {
	srcs := proxyDefaultsSource(cfg)
	if r := cfg.Routers[service]; r != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: service}, field: "Meta",
			values: r.Meta})
	}
	return parseExt(mesh.ScopeRoute, srcs...)
}

// clusterExt are the cluster keys of a target service.
func clusterExt(cfg *mesh.Config, service string) (extSet, error) {
	srcs := proxyDefaultsSource(cfg)
	if sd := cfg.ServiceDefaults[service]; sd != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceDefaults, Name: service}, field: "Meta",
			values: sd.Meta})
	}
	if r := cfg.Resolvers[service]; r != nil {
		srcs = append(srcs, extSource{entry: mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: service}, field: "Meta",
			values: r.Meta})
	}
	return parseExt(mesh.ScopeCluster, srcs...)
}
