package config

import (
	"fmt"
	"regexp"
	"time"
)

// Config is one complete, consistent runtime configuration.
type Config struct {
	// Version is the xDS version info per type URL that produced this config
	// (for /config_dump and logs).
	Versions map[string]string
	// Listeners by name.
	Listeners map[string]*Listener
	// Routes (route configurations) by name.
	Routes map[string]*RouteConfig
	// Clusters by name; each carries its endpoints (from EDS or inline).
	Clusters map[string]*Cluster
}

// Listener is one LDS listener. Exactly one of HTTP and TCP is set.
type Listener struct {
	Name    string
	Address string // host:port
	HTTP    *HTTPConnectionManager
	TCP     *TCPProxy
	// PerConnectionBufferLimitBytes (Envoy default 1 MiB).
	PerConnectionBufferLimitBytes uint32
}

// HTTPConnectionManager is the subset of
// envoy.extensions.filters.network.http_connection_manager.v3 we implement.
type HTTPConnectionManager struct {
	StatPrefix string
	// RouteConfigName is the RDS name; Inline is set instead for route_config.
	RouteConfigName string
	Inline          *RouteConfig
	// StreamIdleTimeout (Envoy default 5 min), RequestTimeout (0 = off).
	StreamIdleTimeout time.Duration
	RequestTimeout    time.Duration
	// UseRemoteAddress: x-forwarded-for gets the peer address appended.
	UseRemoteAddress bool
	// GenerateRequestID (Envoy default true).
	GenerateRequestID bool
	// Codec is codec_type: CodecAuto (the default) serves HTTP/1.1 and h2c
	// prior knowledge on the port, CodecHTTP1 only HTTP/1.x, CodecHTTP2
	// only h2c.
	Codec Codec
}

// Codec is an HTTP connection manager's codec_type.
type Codec uint8

// The codecs, as Envoy's codec_type.
const (
	CodecAuto Codec = iota
	CodecHTTP1
	CodecHTTP2
)

// TCPProxy forwards raw bytes to a cluster.
type TCPProxy struct {
	StatPrefix  string
	Cluster     string
	IdleTimeout time.Duration // Envoy default 1 h; 0 = none
}

// RouteConfig is one RDS route configuration.
type RouteConfig struct {
	Name         string
	VirtualHosts []*VirtualHost
	// Header manipulation at route-configuration level.
	RequestHeadersToAdd     []HeaderValueOption
	RequestHeadersToRemove  []string
	ResponseHeadersToAdd    []HeaderValueOption
	ResponseHeadersToRemove []string
}

// VirtualHost groups routes by domain.
type VirtualHost struct {
	Name    string
	Domains []string // exact, "*.suffix", "prefix.*" or "*"
	Routes  []*Route
	// RetryPolicy applies to routes that have none.
	RetryPolicy *RetryPolicy
	// PerRequestBufferLimitBytes bounds the body kept for retries (with
	// the listener's limit); 0 = unset. A route's own value wins.
	PerRequestBufferLimitBytes uint32
	// IncludeRequestAttemptCount / IncludeAttemptCountInResponse: send
	// x-envoy-attempt-count upstream / to the client.
	IncludeRequestAttemptCount    bool
	IncludeAttemptCountInResponse bool
	RequestHeadersToAdd           []HeaderValueOption
	RequestHeadersToRemove        []string
	ResponseHeadersToAdd          []HeaderValueOption
	ResponseHeadersToRemove       []string
}

// Route is one route: a match and exactly one action (Forward, Redirect or
// DirectResponse).
type Route struct {
	Name           string
	Match          RouteMatch
	Forward        *RouteAction
	Redirect       *RedirectAction
	DirectResponse *DirectResponseAction
	// PerRequestBufferLimitBytes, see VirtualHost; 0 = unset.
	PerRequestBufferLimitBytes uint32

	RequestHeadersToAdd     []HeaderValueOption
	RequestHeadersToRemove  []string
	ResponseHeadersToAdd    []HeaderValueOption
	ResponseHeadersToRemove []string
}

// PathMatchKind says how RouteMatch.Path is compared.
type PathMatchKind uint8

const (
	PathPrefix PathMatchKind = iota // "" matches everything
	PathExact
	PathRegex
)

// RouteMatch is envoy.config.route.v3.RouteMatch (subset).
type RouteMatch struct {
	Kind          PathMatchKind
	Path          string         // prefix or exact path
	Regex         *regexp.Regexp // PathRegex: whole-path match (anchored)
	CaseSensitive bool           // Envoy default true
	Headers       []HeaderMatcher
	QueryParams   []QueryParamMatcher
	// GRPC: only match requests with content-type application/grpc*.
	GRPC bool
}

// StringMatchKind is how a StringMatcher compares.
type StringMatchKind uint8

const (
	MatchExact StringMatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex
	MatchPresent // header or parameter present, any value
)

// StringMatcher compares a value.
type StringMatcher struct {
	Kind       StringMatchKind
	Value      string
	Regex      *regexp.Regexp // anchored, full match (Envoy safe_regex)
	IgnoreCase bool
}

// HeaderMatcher is envoy.config.route.v3.HeaderMatcher (subset).
type HeaderMatcher struct {
	Name   string // lower case
	Match  StringMatcher
	Invert bool
	// PresentMatch false (present_match: false) means "absent"; encoded as
	// Match.Kind == MatchPresent with Invert set by the decoder.
}

// QueryParamMatcher is envoy.config.route.v3.QueryParameterMatcher.
type QueryParamMatcher struct {
	Name  string
	Match StringMatcher
}

// RouteAction forwards to a cluster.
type RouteAction struct {
	// Exactly one of Cluster and WeightedClusters is set.
	Cluster          string
	WeightedClusters []WeightedCluster
	TotalWeight      uint32 // sum of weights

	PrefixRewrite string
	// RegexRewrite replaces matches of Pattern in the path by Substitution.
	RegexRewrite *RegexRewrite
	// HostRewriteLiteral replaces :authority; AutoHostRewrite uses the
	// upstream host's address.
	HostRewriteLiteral string
	AutoHostRewrite    bool

	// Timeout bounds the whole request including retries (Envoy default
	// 15 s; 0 = disabled).
	Timeout     time.Duration
	IdleTimeout time.Duration

	RetryPolicy  *RetryPolicy
	HashPolicies []HashPolicy
}

// RegexRewrite is RouteAction.regex_rewrite.
type RegexRewrite struct {
	Pattern      *regexp.Regexp
	Substitution string
}

// WeightedCluster is one entry of weighted_clusters.
type WeightedCluster struct {
	Name                    string
	Weight                  uint32
	RequestHeadersToAdd     []HeaderValueOption
	RequestHeadersToRemove  []string
	ResponseHeadersToAdd    []HeaderValueOption
	ResponseHeadersToRemove []string
}

// RetryPolicy is envoy.config.route.v3.RetryPolicy (subset filled in by
// the resilience work; the decoder sets Envoy's defaults).
type RetryPolicy struct {
	RetryOn               RetryOn
	NumRetries            uint32        // default 1
	PerTryTimeout         time.Duration // 0 = route timeout
	PerTryIdleTimeout     time.Duration
	RetriableStatusCodes  []uint32
	BackOffBase           time.Duration // default 25 ms
	BackOffMax            time.Duration // default 10 × base
	RetryPreviousHosts    bool          // retry_host_predicate previous_hosts
	HostSelectionAttempts int64         // host_selection_retry_max_attempts
	// RetriableHeaders: a response with a header matching any of these is
	// retried under retry-on retriable-headers.
	RetriableHeaders []HeaderMatcher
	// RateLimitedBackOff is rate_limited_retry_back_off; nil when unset.
	RateLimitedBackOff *RateLimitedBackOff
}

// RateLimitedBackOff is RetryPolicy.rate_limited_retry_back_off: wait what
// the upstream's reset header says instead of the exponential back-off.
type RateLimitedBackOff struct {
	ResetHeaders []ResetHeader // tried in order
	MaxInterval  time.Duration // default 300 s; longer values are discarded
}

// ResetHeader names a response header holding when to retry.
type ResetHeader struct {
	Name          string // canonical header key
	UnixTimestamp bool   // false: seconds to wait (Retry-After)
}

// RetryOn is a bit set of Envoy retry_on conditions.
type RetryOn uint32

const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryRetriableStatusCodes
	RetryRetriableHeaders
	RetryGRPCCancelled
	RetryGRPCDeadlineExceeded
	RetryGRPCInternal
	RetryGRPCResourceExhausted
	RetryGRPCUnavailable
)

// HashPolicy is one RouteAction.hash_policy element.
type HashPolicy struct {
	Header     string // header name, lower case
	Cookie     string // cookie name
	CookieTTL  time.Duration
	CookiePath string
	SourceIP   bool
	QueryParam string
	Terminal   bool
}

// RedirectAction is RouteAction redirect.
type RedirectAction struct {
	SchemeRedirect string
	HostRedirect   string
	PortRedirect   uint32
	PathRedirect   string
	PrefixRewrite  string
	HTTPSRedirect  bool
	StripQuery     bool
	ResponseCode   int // 301 (default), 302, 303, 307, 308
}

// DirectResponseAction answers without an upstream.
type DirectResponseAction struct {
	Status int
	Body   []byte
}

// HeaderValueOption is a header to add. Append false means overwrite
// (Envoy's append_action OVERWRITE_IF_EXISTS_OR_ADD); true means add.
type HeaderValueOption struct {
	Key    string
	Value  string
	Append bool
}

// LBPolicy is the cluster load-balancing policy.
type LBPolicy uint8

const (
	RoundRobin LBPolicy = iota // Envoy default
	LeastRequest
	Random
	RingHash
	Maglev
)

// Protocol is what the cluster speaks to its endpoints.
type Protocol uint8

const (
	HTTP1 Protocol = iota
	HTTP2          // h2c (prior knowledge) inside the mesh
)

// Cluster is one CDS cluster with its endpoints (from EDS or inline).
type Cluster struct {
	Name           string
	ConnectTimeout time.Duration // Envoy default 5 s
	LBPolicy       LBPolicy
	// LeastRequestChoiceCount (default 2).
	LeastRequestChoiceCount uint32
	// Ring hash sizes (defaults 1024 / 8M); Maglev table size (65537).
	RingHashMinSize uint64
	RingHashMaxSize uint64
	MaglevTableSize uint64
	Protocol        Protocol
	// HealthyPanicThreshold in percent (default 50).
	HealthyPanicThreshold float64

	CircuitBreakers  CircuitBreakers
	OutlierDetection *OutlierDetection // nil = off

	// EDSServiceName is the ClusterLoadAssignment name to use (defaults to
	// Name) when the cluster type is EDS.
	EDSServiceName string
	Endpoints      []Endpoint
	// DialNetwork is the network upstream connections are dialled on:
	// "tcp" (empty), or "tcp4"/"tcp6" for a LOGICAL_DNS cluster whose
	// dns_lookup_family is V4_ONLY/V6_ONLY (its endpoint is a name,
	// resolved for every new connection).
	DialNetwork string
	// StrictDNS: the endpoints are host:port names, each resolved to all
	// its addresses (one host each) before use and every DNSRefreshRate
	// (Envoy's STRICT_DNS; package sidecar/dns).
	StrictDNS      bool
	DNSRefreshRate time.Duration
}

// HealthStatus of an endpoint as EDS says it.
type HealthStatus uint8

const (
	HealthUnknown HealthStatus = iota // treated as healthy, as Envoy does
	HealthHealthy
	HealthUnhealthy
	HealthDraining
	HealthTimeout
	HealthDegraded
)

// Endpoint is one upstream host.
type Endpoint struct {
	Address  string // host:port
	Weight   uint32 // >= 1
	Health   HealthStatus
	Priority uint32
	Locality string
	// LocalityWeight is the weight of this endpoint's locality.
	LocalityWeight uint32
}

// CircuitBreakers are the default-priority thresholds (Envoy defaults
// 1024 / 1024 / 1024 / 3).
type CircuitBreakers struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
	// Explicit marks the thresholds the configuration set, zero included:
	// Envoy reads `max_retries: 0` as "no retry at once", not as the
	// default. A zero threshold not marked here means Envoy's default, so a
	// zero CircuitBreakers is Envoy's defaults.
	Explicit Threshold
	// RetryBudget, when set, replaces MaxRetries.
	RetryBudget *RetryBudget
}

// Threshold names one circuit-breaker threshold; values combine as a set.
type Threshold uint8

// The thresholds of CircuitBreakers.
const (
	ThresholdConnections Threshold = 1 << iota
	ThresholdPendingRequests
	ThresholdRequests
	ThresholdRetries
)

// Envoy's default thresholds (circuit_breaker.proto).
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// Limit is the effective value of one threshold: the configured value when
// it is non-zero or explicitly set, else Envoy's default. A nil
// CircuitBreakers is all defaults. For ThresholdRetries it is max_retries;
// the retry budget, when set, is the caller's to apply.
func (cb *CircuitBreakers) Limit(t Threshold) int64 {
	var v uint32
	var def int64
	switch t {
	case ThresholdConnections:
		def = DefaultMaxConnections
		if cb != nil {
			v = cb.MaxConnections
		}
	case ThresholdPendingRequests:
		def = DefaultMaxPendingRequests
		if cb != nil {
			v = cb.MaxPendingRequests
		}
	case ThresholdRequests:
		def = DefaultMaxRequests
		if cb != nil {
			v = cb.MaxRequests
		}
	case ThresholdRetries:
		def = DefaultMaxRetries
		if cb != nil {
			v = cb.MaxRetries
		}
	default:
		panic(fmt.Sprintf("config: unknown circuit-breaker threshold %d", t))
	}
	if v != 0 || (cb != nil && cb.Explicit&t != 0) {
		return int64(v)
	}
	return def
}

// RetryBudget is circuit_breakers.thresholds.retry_budget.
type RetryBudget struct {
	BudgetPercent       float64 // default 20
	MinRetryConcurrency uint32  // default 3
}

// OutlierDetection is Cluster.outlier_detection with Envoy's defaults.
type OutlierDetection struct {
	Consecutive5xx                         uint32        // default 5
	ConsecutiveGatewayFailure              uint32        // default 5
	ConsecutiveLocalOriginFailure          uint32        // default 5
	Interval                               time.Duration // default 10 s
	BaseEjectionTime                       time.Duration // default 30 s
	MaxEjectionTime                        time.Duration // default 300 s
	MaxEjectionTimeJitter                  time.Duration // default 0
	MaxEjectionPercent                     uint32        // default 10
	EnforcingConsecutive5xx                uint32        // default 100
	EnforcingConsecutiveGatewayFailure     uint32        // default 0
	EnforcingConsecutiveLocalOriginFailure uint32        // default 100
	EnforcingSuccessRate                   uint32        // default 100
	SuccessRateMinimumHosts                uint32        // default 5
	SuccessRateRequestVolume               uint32        // default 100
	SuccessRateStdevFactor                 uint32        // default 1900 (÷1000)
	EnforcingFailurePercentage             uint32        // default 0
	FailurePercentageMinimumHosts          uint32        // default 5
	FailurePercentageRequestVolume         uint32        // default 50
	FailurePercentageThreshold             uint32        // default 85
	SplitExternalLocalOriginErrors         bool
}
