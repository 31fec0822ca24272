package decode

import (
	"fmt"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Envoy defaults for clusters (cluster.proto, circuit_breaker.proto,
// outlier_detection.proto).
const (
	defaultConnectTimeout        = 5 * time.Second
	defaultChoiceCount           = 2
	defaultRingMin               = 1024
	defaultRingMax               = 8 * 1024 * 1024
	defaultMaglevTableSize       = 65537
	defaultHealthyPanicThreshold = 50.0
	defaultDNSRefreshRate        = 5 * time.Second
	defaultBudgetPercent         = 20.0
	defaultMinRetryConcurrency   = 3
)

// Cluster decodes one CDS resource. A STATIC cluster carries its endpoints
// from load_assignment; an EDS cluster has EDSServiceName set and its
// endpoints come from the ClusterLoadAssignment of that name.
func Cluster(c *clusterv3.Cluster) (*config.Cluster, error) {
	out, err := cluster(c)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", c.GetName(), err)
	}
	return out, nil
}

func cluster(c *clusterv3.Cluster) (*config.Cluster, error) {
	if err := checkSupported(c); err != nil {
		return nil, err
	}
	if err := validate(c); err != nil {
		return nil, err
	}
	if c.GetName() == "" {
		return nil, fmt.Errorf("name is required")
	}
	out := &config.Cluster{
		Name:                    c.GetName(),
		ConnectTimeout:          duration(c.GetConnectTimeout(), defaultConnectTimeout),
		LeastRequestChoiceCount: defaultChoiceCount,
		RingHashMinSize:         defaultRingMin,
		RingHashMaxSize:         defaultRingMax,
		MaglevTableSize:         defaultMaglevTableSize,
		HealthyPanicThreshold:   defaultHealthyPanicThreshold,
	}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		if c.GetEdsClusterConfig() != nil {
			return nil, fmt.Errorf("eds_cluster_config: only valid with type EDS")
		}
		if c.GetLoadAssignment() == nil {
			return nil, fmt.Errorf("load_assignment is required for type STATIC")
		}
		eps, err := endpoints(c.GetLoadAssignment())
		if err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
		out.Endpoints = eps
	case clusterv3.Cluster_EDS:
		eds := c.GetEdsClusterConfig()
		if eds == nil {
			return nil, fmt.Errorf("eds_cluster_config is required for type EDS")
		}
		if err := adsSource(eds.GetEdsConfig(), "eds_cluster_config.eds_config"); err != nil {
			return nil, err
		}
		if c.GetLoadAssignment() != nil {
			// Envoy ignores it for EDS clusters; we say so instead.
			return nil, fmt.Errorf("load_assignment: not used with type EDS")
		}
		out.EDSServiceName = eds.GetServiceName()
		if out.EDSServiceName == "" {
			out.EDSServiceName = c.GetName()
		}
	case clusterv3.Cluster_STRICT_DNS:
		// Envoy: every address each endpoint's name resolves to is a host,
		// resolved again every dns_refresh_rate (default 5 s); the sidecar
		// does it in package sidecar/dns before the cluster is used.
		if c.GetEdsClusterConfig() != nil {
			return nil, fmt.Errorf("eds_cluster_config: only valid with type EDS")
		}
		if c.GetLoadAssignment() == nil {
			return nil, fmt.Errorf("load_assignment is required for type STRICT_DNS")
		}
		if c.GetRespectDnsTtl() {
			return nil, fmt.Errorf("respect_dns_ttl: not supported (names are resolved every dns_refresh_rate)")
		}
		eps, err := endpointsOf(c.GetLoadAssignment(), true)
		if err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
		out.Endpoints = eps
		out.StrictDNS = true
		out.DNSRefreshRate = duration(c.GetDnsRefreshRate(), defaultDNSRefreshRate)
		if out.DialNetwork, err = dnsFamily(c); err != nil {
			return nil, err
		}
	case clusterv3.Cluster_LOGICAL_DNS:
		// Envoy: a single endpoint whose name is resolved, and whose first
		// address takes each new connection; connections outlive a change
		// of address. We resolve the name for every new connection, which
		// is what Envoy's periodic re-resolution (dns_refresh_rate)
		// approximates.
		if c.GetEdsClusterConfig() != nil {
			return nil, fmt.Errorf("eds_cluster_config: only valid with type EDS")
		}
		la := c.GetLoadAssignment()
		if len(la.GetEndpoints()) != 1 || len(la.GetEndpoints()[0].GetLbEndpoints()) != 1 {
			return nil, fmt.Errorf("load_assignment: LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint")
		}
		eps, err := endpointsOf(la, true)
		if err != nil {
			return nil, fmt.Errorf("load_assignment: %w", err)
		}
		out.Endpoints = eps
		if out.DialNetwork, err = dnsFamily(c); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("type: %s is not supported (STATIC, EDS, STRICT_DNS or LOGICAL_DNS)", c.GetType())
	}
	if err := lbPolicy(c, out); err != nil {
		return nil, err
	}
	if t := c.GetCommonLbConfig().GetHealthyPanicThreshold(); t != nil {
		out.HealthyPanicThreshold = t.GetValue()
	}
	cb, err := circuitBreakers(c.GetCircuitBreakers())
	if err != nil {
		return nil, fmt.Errorf("circuit_breakers: %w", err)
	}
	out.CircuitBreakers = cb
	if od := c.GetOutlierDetection(); od != nil {
		out.OutlierDetection = outlierDetection(od)
	}
	if out.Protocol, err = protocol(c); err != nil {
		return nil, err
	}
	return out, nil
}

func lbPolicy(c *clusterv3.Cluster, out *config.Cluster) error {
	want := map[clusterv3.Cluster_LbPolicy]string{
		clusterv3.Cluster_LEAST_REQUEST: "least_request_lb_config",
		clusterv3.Cluster_RING_HASH:     "ring_hash_lb_config",
		clusterv3.Cluster_MAGLEV:        "maglev_lb_config",
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		out.LBPolicy = config.RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		out.LBPolicy = config.LeastRequest
		out.LeastRequestChoiceCount = u32(c.GetLeastRequestLbConfig().GetChoiceCount(), defaultChoiceCount)
	case clusterv3.Cluster_RANDOM:
		out.LBPolicy = config.Random
	case clusterv3.Cluster_RING_HASH:
		out.LBPolicy = config.RingHash
		rh := c.GetRingHashLbConfig()
		if rh.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return fmt.Errorf("ring_hash_lb_config.hash_function: %s is not supported", rh.GetHashFunction())
		}
		out.RingHashMinSize = u64(rh.GetMinimumRingSize(), defaultRingMin)
		out.RingHashMaxSize = u64(rh.GetMaximumRingSize(), defaultRingMax)
		if out.RingHashMinSize > out.RingHashMaxSize {
			return fmt.Errorf("ring_hash_lb_config: minimum_ring_size %d exceeds maximum_ring_size %d", out.RingHashMinSize, out.RingHashMaxSize)
		}
	case clusterv3.Cluster_MAGLEV:
		out.LBPolicy = config.Maglev
		out.MaglevTableSize = u64(c.GetMaglevLbConfig().GetTableSize(), defaultMaglevTableSize)
		if !isPrime(out.MaglevTableSize) {
			return fmt.Errorf("maglev_lb_config.table_size: %d is not prime", out.MaglevTableSize)
		}
	default:
		return fmt.Errorf("lb_policy: %s is not supported", c.GetLbPolicy())
	}
	// An lb config for another policy would be dead configuration (they
	// share the lb_config oneof, so at most one is set).
	for policy, field := range map[clusterv3.Cluster_LbPolicy]bool{
		clusterv3.Cluster_LEAST_REQUEST: c.GetLeastRequestLbConfig() != nil,
		clusterv3.Cluster_RING_HASH:     c.GetRingHashLbConfig() != nil,
		clusterv3.Cluster_MAGLEV:        c.GetMaglevLbConfig() != nil,
	} {
		if field && policy != c.GetLbPolicy() {
			return fmt.Errorf("%s: only valid with lb_policy %s", want[policy], policy)
		}
	}
	return nil
}

// isPrime is trial division: table_size is at most 5000011 (the proto's
// validation rule, checked before), so this is ~2000 steps at worst.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func circuitBreakers(cb *clusterv3.CircuitBreakers) (config.CircuitBreakers, error) {
	out := config.CircuitBreakers{
		MaxConnections:     config.DefaultMaxConnections,
		MaxPendingRequests: config.DefaultMaxPendingRequests,
		MaxRequests:        config.DefaultMaxRequests,
		MaxRetries:         config.DefaultMaxRetries,
	}
	seen := false
	for i, t := range cb.GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			return out, fmt.Errorf("thresholds[%d].priority: %s is not supported", i, t.GetPriority())
		}
		if seen {
			return out, fmt.Errorf("thresholds[%d]: duplicate DEFAULT priority", i)
		}
		seen = true
		// A threshold set to 0 is 0 (nothing admitted), as in Envoy; only
		// an unset one takes the default.
		for _, th := range []struct {
			v    *wrapperspb.UInt32Value
			dst  *uint32
			mark config.Threshold
		}{
			{t.GetMaxConnections(), &out.MaxConnections, config.ThresholdConnections},
			{t.GetMaxPendingRequests(), &out.MaxPendingRequests, config.ThresholdPendingRequests},
			{t.GetMaxRequests(), &out.MaxRequests, config.ThresholdRequests},
			{t.GetMaxRetries(), &out.MaxRetries, config.ThresholdRetries},
		} {
			if th.v != nil {
				*th.dst = th.v.GetValue()
				out.Explicit |= th.mark
			}
		}
		if rb := t.GetRetryBudget(); rb != nil {
			out.RetryBudget = &config.RetryBudget{
				BudgetPercent:       defaultBudgetPercent,
				MinRetryConcurrency: u32(rb.GetMinRetryConcurrency(), defaultMinRetryConcurrency),
			}
			if p := rb.GetBudgetPercent(); p != nil {
				out.RetryBudget.BudgetPercent = p.GetValue()
			}
		}
	}
	return out, nil
}

func outlierDetection(od *clusterv3.OutlierDetection) *config.OutlierDetection {
	return &config.OutlierDetection{
		Consecutive5xx:                         u32(od.GetConsecutive_5Xx(), 5),
		ConsecutiveGatewayFailure:              u32(od.GetConsecutiveGatewayFailure(), 5),
		ConsecutiveLocalOriginFailure:          u32(od.GetConsecutiveLocalOriginFailure(), 5),
		Interval:                               duration(od.GetInterval(), 10*time.Second),
		BaseEjectionTime:                       duration(od.GetBaseEjectionTime(), 30*time.Second),
		MaxEjectionTime:                        duration(od.GetMaxEjectionTime(), 300*time.Second),
		MaxEjectionTimeJitter:                  duration(od.GetMaxEjectionTimeJitter(), 0),
		MaxEjectionPercent:                     u32(od.GetMaxEjectionPercent(), 10),
		EnforcingConsecutive5xx:                u32(od.GetEnforcingConsecutive_5Xx(), 100),
		EnforcingConsecutiveGatewayFailure:     u32(od.GetEnforcingConsecutiveGatewayFailure(), 0),
		EnforcingConsecutiveLocalOriginFailure: u32(od.GetEnforcingConsecutiveLocalOriginFailure(), 100),
		EnforcingSuccessRate:                   u32(od.GetEnforcingSuccessRate(), 100),
		SuccessRateMinimumHosts:                u32(od.GetSuccessRateMinimumHosts(), 5),
		SuccessRateRequestVolume:               u32(od.GetSuccessRateRequestVolume(), 100),
		SuccessRateStdevFactor:                 u32(od.GetSuccessRateStdevFactor(), 1900),
		EnforcingFailurePercentage:             u32(od.GetEnforcingFailurePercentage(), 0),
		FailurePercentageMinimumHosts:          u32(od.GetFailurePercentageMinimumHosts(), 5),
		FailurePercentageRequestVolume:         u32(od.GetFailurePercentageRequestVolume(), 50),
		FailurePercentageThreshold:             u32(od.GetFailurePercentageThreshold(), 85),
		SplitExternalLocalOriginErrors:         od.GetSplitExternalLocalOriginErrors(),
	}
}

// protocol reads the upstream protocol from the deprecated
// http2_protocol_options or from typed_extension_protocol_options'
// HttpProtocolOptions.explicit_http_config (the v3 way).
func protocol(c *clusterv3.Cluster) (config.Protocol, error) {
	p := config.HTTP1
	if c.GetHttp2ProtocolOptions() != nil {
		p = config.HTTP2
	}
	opts := c.GetTypedExtensionProtocolOptions()
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := fmt.Sprintf("typed_extension_protocol_options[%q]", k)
		if k != httpOptionsType {
			return p, fmt.Errorf("%s: extension is not supported", field)
		}
		var hpo httpv3.HttpProtocolOptions
		if err := opts[k].UnmarshalTo(&hpo); err != nil {
			return p, fmt.Errorf("%s: %w", field, err)
		}
		if err := validate(&hpo); err != nil {
			return p, fmt.Errorf("%s: %w", field, err)
		}
		ex := hpo.GetExplicitHttpConfig()
		switch {
		case ex == nil:
			return p, fmt.Errorf("%s: explicit_http_config is required", field)
		case ex.GetHttp2ProtocolOptions() != nil:
			p = config.HTTP2
		case ex.GetHttpProtocolOptions() != nil:
			if c.GetHttp2ProtocolOptions() != nil {
				return p, fmt.Errorf("%s: HTTP/1 contradicts http2_protocol_options", field)
			}
			p = config.HTTP1
		default:
			return p, fmt.Errorf("%s.explicit_http_config: http_protocol_options or http2_protocol_options is required", field)
		}
	}
	return p, nil
}

// dnsFamily maps a DNS cluster's dns_lookup_family to the network its
// hosts are resolved and dialled on ("" for both families).
func dnsFamily(c *clusterv3.Cluster) (string, error) {
	switch f := c.GetDnsLookupFamily(); f {
	case clusterv3.Cluster_V4_ONLY:
		return "tcp4", nil
	case clusterv3.Cluster_V6_ONLY:
		return "tcp6", nil
	case clusterv3.Cluster_AUTO, clusterv3.Cluster_ALL:
		// Both families: Go's dialer tries the resolved addresses of both
		// (RFC 6555), as AUTO's "IPv6 then IPv4" fallback does; STRICT_DNS
		// makes a host of every address.
		return "", nil
	default:
		return "", fmt.Errorf("dns_lookup_family: %s is not supported (AUTO, V4_ONLY, V6_ONLY or ALL)", f)
	}
}
