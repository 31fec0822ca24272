package mesh

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Snapshot is one consistent view of the mesh.
type Snapshot struct {
	// Index is the highest Consul raft index folded into this snapshot. It
	// is informational (logs, status); versions of xDS resources are derived
	// from content, not from it.
	Index uint64
	// Datacenter is the local agent's datacenter.
	Datacenter string
	// Services by name: every service known to the catalog, including
	// connect-proxy services themselves (Kind == KindConnectProxy).
	Services map[string]*Service
	// Proxies by proxy service ID (the xDS node ID of a sidecar).
	Proxies map[string]*Proxy
	// Config holds the decoded config entries.
	Config Config
}

// Service returns the named service, or nil.
func (s *Snapshot) Service(name string) *Service {
	if s == nil {
		return nil
	}
	return s.Services[name]
}

// Proxy returns the sidecar proxy with the given service ID, or nil.
func (s *Snapshot) Proxy(id string) *Proxy {
	if s == nil {
		return nil
	}
	return s.Proxies[id]
}

// ServiceKind is Consul's service kind.
type ServiceKind string

const (
	// KindTypical is an ordinary service.
	KindTypical ServiceKind = ""
	// KindConnectProxy is a Connect sidecar proxy registration.
	KindConnectProxy ServiceKind = "connect-proxy"
)

// Health is the aggregated status of an instance's checks (node checks
// included), as Consul computes it: the worst status wins.
type Health string

const (
	HealthPassing     Health = "passing"
	HealthWarning     Health = "warning"
	HealthCritical    Health = "critical"
	HealthMaintenance Health = "maintenance"
)

// Service is every instance registered under one service name.
type Service struct {
	Name string
	Kind ServiceKind
	// Instances of the service itself, sorted by (Node, ID), with their
	// health. Unhealthy instances are kept: the translator decides.
	Instances []Instance
	// Sidecars are the connect-proxy instances whose destination is this
	// service, sorted by (Node, ID). Empty when the service is not in the
	// mesh; traffic then goes to Instances directly.
	Sidecars []Instance
}

// Instance is one registration of a service on a node.
type Instance struct {
	ID         string
	Service    string
	Node       string
	Datacenter string
	// Address is the service address, or the node address when the
	// registration has none (Consul's documented fallback).
	Address string
	Port    int
	Tags    []string
	Meta    map[string]string
	// NodeMeta is the node's metadata (resolver subset filters may use it).
	NodeMeta map[string]string
	Health   Health
	// Weights are Consul's DNS/SRV weights for passing and warning states.
	Weights Weights
}

// Weights are Consul's instance weights.
type Weights struct {
	Passing int
	Warning int
}

// Proxy is a connect-proxy registration (a sidecar).
type Proxy struct {
	// ID is the proxy's service ID, e.g. "web-1-sidecar-proxy"; the xDS
	// node ID the sidecar presents.
	ID string
	// Name is the proxy's service name, e.g. "web-sidecar-proxy".
	Name    string
	Node    string
	Address string
	Port    int
	Health  Health
	// DestinationService is the name of the service it fronts.
	DestinationService   string
	DestinationServiceID string
	LocalServiceAddress  string
	LocalServicePort     int
	// Config is the proxy's opaque Config map, values rendered as strings
	// (numbers in decimal, bools as true/false, nested values as JSON).
	Config    map[string]string
	Upstreams []Upstream
}

// Upstream is one upstream a proxy declared.
type Upstream struct {
	// DestinationType is "service" (the default) or "prepared_query".
	DestinationType  string
	DestinationName  string
	Datacenter       string
	LocalBindAddress string
	LocalBindPort    int
	// Config is the upstream's opaque Config map, rendered as in Proxy.Config.
	Config map[string]string
}

// EntryKind names a config entry kind.
type EntryKind string

const (
	KindProxyDefaults   EntryKind = "proxy-defaults"
	KindServiceDefaults EntryKind = "service-defaults"
	KindServiceRouter   EntryKind = "service-router"
	KindServiceSplitter EntryKind = "service-splitter"
	KindServiceResolver EntryKind = "service-resolver"
)

// EntryRef names a config entry, for error messages and status.
type EntryRef struct {
	Kind EntryKind
	Name string
}

func (r EntryRef) String() string { return string(r.Kind) + "/" + r.Name }

// Config is every supported config entry, decoded.
type Config struct {
	// ProxyDefaults is the "global" proxy-defaults entry, or nil.
	ProxyDefaults *ProxyDefaults
	// The rest are keyed by service name.
	ServiceDefaults map[string]*ServiceDefaults
	Routers         map[string]*ServiceRouter
	Splitters       map[string]*ServiceSplitter
	Resolvers       map[string]*ServiceResolver
	// Errors lists entries that could not be decoded; each names the entry
	// and the field. The maps above keep the last good version of a broken
	// entry (or none, if it never decoded), so a bad write loses nothing.
	Errors []EntryError
}

// EntryError is a config entry that Consul accepted and we could not decode.
type EntryError struct {
	Entry EntryRef
	Field string
	Err   string
}

// ProxyDefaults is the global proxy-defaults entry.
type ProxyDefaults struct {
	// Protocol from Config["protocol"]: tcp (Consul's default), http,
	// http2 or grpc. Empty when unset.
	Protocol string
	// Config is the raw Config map, values rendered as strings.
	Config      map[string]string
	MeshGateway string
	Meta        map[string]string
}

// ServiceDefaults is a service-defaults entry.
type ServiceDefaults struct {
	Name     string
	Protocol string
	// UpstreamConfig applies to this service's proxies' upstreams.
	UpstreamDefaults  *UpstreamConfig
	UpstreamOverrides []UpstreamConfig
	// MaxInboundConnections limits the public listener (0 = unlimited).
	MaxInboundConnections int
	LocalConnectTimeout   time.Duration
	LocalRequestTimeout   time.Duration
	Meta                  map[string]string
}

// UpstreamConfig is service-defaults UpstreamConfig.Defaults / Overrides[].
type UpstreamConfig struct {
	// Name is set for overrides (the upstream service), empty for defaults.
	Name               string
	Protocol           string
	ConnectTimeout     time.Duration // ConnectTimeoutMs; 0 = unset
	Limits             *UpstreamLimits
	PassiveHealthCheck *PassiveHealthCheck
}

// UpstreamLimits map to Envoy circuit breakers. Nil pointer = unset.
type UpstreamLimits struct {
	MaxConnections        *int
	MaxPendingRequests    *int
	MaxConcurrentRequests *int
}

// PassiveHealthCheck maps to Envoy outlier detection.
type PassiveHealthCheck struct {
	Interval                time.Duration
	MaxFailures             uint32
	EnforcingConsecutive5xx *uint32
	MaxEjectionPercent      *uint32
	BaseEjectionTime        *time.Duration
}

// ServiceRouter is a service-router entry.
type ServiceRouter struct {
	Name   string
	Routes []Route
	Meta   map[string]string
}

// Route is one service-router route.
type Route struct {
	Match       *RouteMatch
	Destination *RouteDestination
}

// RouteMatch is Routes[].Match.HTTP.
type RouteMatch struct {
	PathExact  string
	PathPrefix string
	PathRegex  string
	Header     []HeaderMatch
	QueryParam []QueryMatch
	Methods    []string
}

// HeaderMatch is one header criterion.
type HeaderMatch struct {
	Name    string
	Present bool
	Exact   string
	Prefix  string
	Suffix  string
	Regex   string
	Invert  bool
}

// QueryMatch is one query parameter criterion.
type QueryMatch struct {
	Name    string
	Present bool
	Exact   string
	Regex   string
}

// RouteDestination is Routes[].Destination.
type RouteDestination struct {
	Service               string
	ServiceSubset         string
	PrefixRewrite         string
	RequestTimeout        time.Duration
	IdleTimeout           time.Duration
	NumRetries            uint32
	RetryOnConnectFailure bool
	RetryOn               []string
	RetryOnStatusCodes    []uint32
	RequestHeaders        *HeaderModifiers
	ResponseHeaders       *HeaderModifiers
}

// HeaderModifiers add, set or remove headers.
type HeaderModifiers struct {
	Add    map[string]string
	Set    map[string]string
	Remove []string
}

// ServiceSplitter is a service-splitter entry.
type ServiceSplitter struct {
	Name   string
	Splits []Split
	Meta   map[string]string
}

// Split is one weighted split. Weight is a percentage with 0.01 resolution.
type Split struct {
	Weight          float32
	Service         string
	ServiceSubset   string
	RequestHeaders  *HeaderModifiers
	ResponseHeaders *HeaderModifiers
}

// ServiceResolver is a service-resolver entry.
type ServiceResolver struct {
	Name           string
	DefaultSubset  string
	Subsets        map[string]ResolverSubset
	Redirect       *ResolverRedirect
	Failover       map[string]ResolverFailover // key: subset name or "*"
	ConnectTimeout time.Duration
	RequestTimeout time.Duration
	LoadBalancer   *LoadBalancer
	Meta           map[string]string
}

// ResolverSubset selects instances by a Consul filter expression.
type ResolverSubset struct {
	Filter      string
	OnlyPassing bool
}

// ResolverRedirect sends all traffic to another service/subset.
type ResolverRedirect struct {
	Service       string
	ServiceSubset string
	Datacenter    string
}

// ResolverFailover lists failover targets in order.
type ResolverFailover struct {
	Service       string
	ServiceSubset string
	Datacenters   []string
	Targets       []FailoverTarget
}

// FailoverTarget is one Failover Targets[] element.
type FailoverTarget struct {
	Service       string
	ServiceSubset string
	Datacenter    string
}

// LoadBalancer is service-resolver LoadBalancer.
type LoadBalancer struct {
	// Policy: "", round_robin, least_request, random, ring_hash, maglev.
	Policy             string
	LeastRequestConfig *LeastRequestConfig
	RingHashConfig     *RingHashConfig
	HashPolicies       []HashPolicy
}

// LeastRequestConfig is LoadBalancer.LeastRequestConfig.
type LeastRequestConfig struct {
	ChoiceCount uint32
}

// RingHashConfig is LoadBalancer.RingHashConfig.
type RingHashConfig struct {
	MinimumRingSize uint64
	MaximumRingSize uint64
}

// HashPolicy is one LoadBalancer.HashPolicies[] element.
type HashPolicy struct {
	// Field: header, cookie or query_parameter; empty with SourceIP.
	Field        string
	FieldValue   string
	CookieConfig *CookieConfig
	SourceIP     bool
	Terminal     bool
}

// CookieConfig is HashPolicy.CookieConfig.
type CookieConfig struct {
	Session bool
	TTL     time.Duration
	Path    string
}

// Extension keys: what users need beyond Consul's fields, set in a config
// entry's Meta (or the global proxy-defaults Config), documented in the
// README ("Policy: Consul config entries"). Every key starts with
// ExtensionKeyPrefix; discovery refuses an entry with an unknown or
// misplaced key or a bad value (like any entry that does not decode), and
// package xds reads them.
const ExtensionKeyPrefix = "consulate_"

// ExtensionScope says what an extension key shapes, and so which entries
// may set it.
type ExtensionScope string

const (
	// ScopeRoute keys shape retry policies: service-router Meta,
	// proxy-defaults Config.
	ScopeRoute ExtensionScope = "route"
	// ScopeCluster keys shape a target's cluster: service-resolver Meta,
	// service-defaults Meta, proxy-defaults Config.
	ScopeCluster ExtensionScope = "cluster"
	// ScopeEndpoints keys shape load assignments: service-defaults Meta,
	// proxy-defaults Config.
	ScopeEndpoints ExtensionScope = "endpoints"
)

// ExtensionValueKind is the type of an extension key's value.
type ExtensionValueKind string

const (
	ExtDuration   ExtensionValueKind = "duration"    // time.ParseDuration, > 0
	ExtBool       ExtensionValueKind = "bool"        // strconv.ParseBool
	ExtUint       ExtensionValueKind = "uint"        // whole number >= 0
	ExtPercent    ExtensionValueKind = "percent"     // number 0-100
	ExtPercentInt ExtensionValueKind = "percent-int" // whole number 0-100
)

// ExtensionKey describes one extension key.
type ExtensionKey struct {
	Scope ExtensionScope
	Kind  ExtensionValueKind
}

// extensionKeys is every extension key.
var extensionKeys = map[string]ExtensionKey{
	"consulate_retry_backoff_base":                    {ScopeRoute, ExtDuration},
	"consulate_retry_backoff_max":                     {ScopeRoute, ExtDuration},
	"consulate_retry_per_try_timeout":                 {ScopeRoute, ExtDuration},
	"consulate_retry_previous_hosts":                  {ScopeRoute, ExtBool},
	"consulate_retry_host_selection_max_attempts":     {ScopeRoute, ExtUint},
	"consulate_retry_budget_percent":                  {ScopeCluster, ExtPercent},
	"consulate_retry_budget_min_concurrency":          {ScopeCluster, ExtUint},
	"consulate_consecutive_gateway_failure":           {ScopeCluster, ExtUint},
	"consulate_enforcing_consecutive_gateway_failure": {ScopeCluster, ExtPercentInt},
	"consulate_success_rate_minimum_hosts":            {ScopeCluster, ExtUint},
	"consulate_success_rate_request_volume":           {ScopeCluster, ExtUint},
	"consulate_success_rate_stdev_factor":             {ScopeCluster, ExtUint},
	"consulate_enforcing_success_rate":                {ScopeCluster, ExtPercentInt},
	"consulate_failure_percentage_threshold":          {ScopeCluster, ExtPercentInt},
	"consulate_enforcing_failure_percentage":          {ScopeCluster, ExtPercentInt},
	"consulate_failure_percentage_minimum_hosts":      {ScopeCluster, ExtUint},
	"consulate_failure_percentage_request_volume":     {ScopeCluster, ExtUint},
	"consulate_max_ejection_time":                     {ScopeCluster, ExtDuration},
	"consulate_healthy_panic_threshold":               {ScopeCluster, ExtPercent},
	"consulate_include_warning":                       {ScopeEndpoints, ExtBool},
}

// LookupExtensionKey returns the description of an extension key.
func LookupExtensionKey(name string) (ExtensionKey, bool) {
	k, ok := extensionKeys[name]
	return k, ok
}

// ExtensionScopes are the scopes of the keys an entry kind may set (in its
// Meta; proxy-defaults in its Config).
func ExtensionScopes(kind EntryKind) []ExtensionScope {
	switch kind {
	case KindProxyDefaults:
		return []ExtensionScope{ScopeRoute, ScopeCluster, ScopeEndpoints}
	case KindServiceRouter:
		return []ExtensionScope{ScopeRoute}
	case KindServiceResolver:
		return []ExtensionScope{ScopeCluster}
	case KindServiceDefaults:
		return []ExtensionScope{ScopeCluster, ScopeEndpoints}
	}
	return nil
}

// ExtensionValue is a parsed extension key value; the field of its kind is
// set.
type ExtensionValue struct {
	Duration time.Duration
	Bool     bool
	Uint     uint32
	Percent  float64
}

// ParseExtensionValue parses s as kind; the error says what was expected.
func ParseExtensionValue(kind ExtensionValueKind, s string) (ExtensionValue, error) {
	s = strings.TrimSpace(s)
	switch kind {
	case ExtDuration:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return ExtensionValue{}, fmt.Errorf("%q is not a positive duration such as 250ms", s)
		}
		return ExtensionValue{Duration: d}, nil
	case ExtBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return ExtensionValue{}, fmt.Errorf("%q is not true or false", s)
		}
		return ExtensionValue{Bool: b}, nil
	case ExtUint, ExtPercentInt:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
			return ExtensionValue{}, fmt.Errorf("%q is not a non-negative whole number", s)
		}
		if kind == ExtPercentInt && f > 100 {
			return ExtensionValue{}, fmt.Errorf("%q is not a percentage (0-100)", s)
		}
		return ExtensionValue{Uint: uint32(f)}, nil
	case ExtPercent:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f >= 0 && f <= 100) {
			return ExtensionValue{}, fmt.Errorf("%q is not a percentage (0-100)", s)
		}
		return ExtensionValue{Percent: f}, nil
	}
	return ExtensionValue{}, fmt.Errorf("unknown value kind %q", kind)
}

// CheckExtensionKeys checks every key with ExtensionKeyPrefix in values (an
// entry's Meta, or the proxy-defaults Config): known, allowed for kind,
// well-formed. It returns the offending key and the problem, or "" and nil.
func CheckExtensionKeys(kind EntryKind, values map[string]string) (string, error) {
	keys := make([]string, 0, len(values))
	for k := range values {
		if strings.HasPrefix(k, ExtensionKeyPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		spec, ok := extensionKeys[k]
		if !ok {
			return k, fmt.Errorf("unknown extension key (see the README's \"Policy: Consul config entries\")")
		}
		if !slices.Contains(ExtensionScopes(kind), spec.Scope) {
			return k, fmt.Errorf("this key does not apply to a %s entry", kind)
		}
		if _, err := ParseExtensionValue(spec.Kind, values[k]); err != nil {
			return k, err
		}
	}
	return "", nil
}
