package mesh

import "time"

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
