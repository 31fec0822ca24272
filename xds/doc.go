// Package xds translates the mesh model (discovery/mesh) into Envoy v3
// resources: pure functions, no I/O, no globals, no Consul types.
//
// API contract (used by the control plane):
//
//	res, err := xds.ForSidecar(snap, proxyID)   // one connect-proxy's resources
//	res, err := c.ForSidecar(snap, proxyID)     // the same through a SidecarCache c (reuses upstreams' translations)
//	res, err := xds.ForProxyless(snap)          // API listeners etc. for grpc-go xds:/// clients
//	cs, err := res.Snapshot()                   // go-control-plane *cache.Snapshot, per-type versions
//	ws := res.Warnings()                        // proxyless: what grpc-go will not apply (log them)
//	ee := xds.EntryErrors(err)                  // the config entry and field a failure is about, or nil
//
// Both return a *Resources that has passed Validate: Validate() on every
// resource and the consistency check (including RDS names inside API
// listeners, which go-control-plane's Snapshot.Consistent does not see),
// with a version per type derived from content (same content, same
// version: a changed endpoint moves only the EDS version) and one per
// resource (ResourceVersions; Snapshot hands them to go-control-plane as
// the delta-xDS VersionMap, so it need not marshal everything again). Any
// other set of resources (e.g. merged by a caller) can be grouped and
// versioned with NewResources and checked with Validate. An unknown proxy
// ID gives an error wrapping ErrUnknownProxy. Errors name the generator
// ("listeners for <proxy>: ...", "clusters for ...", "endpoints for ...")
// and the resource or config entry at fault.
//
// Validate also rejects two listeners that cannot both bind (same port,
// overlapping addresses), and NewResources two resources of one type with
// the same name.
//
// # Concurrency
//
// Every function is pure: it reads the *mesh.Snapshot (immutable by
// contract) and allocates new protos. Any number of goroutines may
// translate concurrently. A *Resources is immutable once returned; it may
// be shared, but neither it nor the protos in it may be modified.
//
// SidecarCache (sidecar_cache.go) is the one stateful type: it keeps each
// upstream's translated, versioned and validated resources keyed by what of
// the proxy the translation reads, and reuses them for other proxies and
// later models while every model value they were made from (by pointer:
// the services their chains reach, those services' config entries and
// sidecar registrations, the globals) is unchanged; listeners and
// local_app clusters, functions of a few settings, it keeps by those
// settings across models. Its results equal ForSidecar's, versions
// included. It is safe for concurrent use (one mutex around its maps,
// never held while translating).
//
// # Sidecar resources (ForSidecar)
//
//   - listener "public_listener" on Proxy.Address (0.0.0.0 if empty):Port.
//     The destination service's protocol decides: http, http2, grpc → an
//     HttpConnectionManager with an inline route configuration "local_app"
//     (virtual host "local_app", domains ["*"], prefix "/" → cluster
//     "local_app", router filter); tcp → tcp_proxy to "local_app".
//     The route's timeout is the proxy Config local_request_timeout_ms
//     (0 disables it), else the service-defaults LocalRequestTimeoutMs,
//     else Envoy's default (15 s). The proxy Config bind_address and
//     bind_port, when set, replace the registration's address and port.
//   - cluster "local_app": STATIC, LocalServiceAddress (127.0.0.1 if
//     empty):LocalServicePort, connect_timeout from the proxy Config
//     local_connect_timeout_ms, else service-defaults LocalConnectTimeoutMs,
//     else 5 s; HTTP/2 protocol options when the service speaks http2 or
//     grpc. (Registration config wins over central config, as in Consul.)
//   - per upstream with ID <id> (the destination service name, plus
//     "?dc=<dc>" for another datacenter): listener "upstream:<id>" on
//     LocalBindAddress (127.0.0.1 if empty):LocalBindPort; HTTP protocols →
//     HttpConnectionManager with RDS over ADS for route configuration
//     "<id>" (virtual host "<id>", domains ["*"], the discovery chain's
//     routes), tcp → tcp_proxy to the chain's single target's cluster.
//   - per target (service, subset, datacenter) the chains reach, an EDS
//     cluster over ADS named as Target.ClusterName documents
//     ("<service>.default.<dc>.internal", "<subset>.<service>.default.<dc>.internal")
//     and its ClusterLoadAssignment: the service's sidecars if it has any,
//     else its own instances, filtered by the subset, then the failover
//     targets' at priorities 1, 2, ...
//
// # Config entries: the discovery chain (chain.go)
//
// As Consul composes it: an upstream's service-router (HTTP protocols and
// the local datacenter only) gives routes in order, then the default route
// "/"; a destination without a subset goes to the service's
// service-splitter if it has one (weighted_clusters, total_weight 10000,
// 0.01 %; nested splitters multiply), else to the service-resolver, which
// applies Redirect, DefaultSubset, the subset's Filter (package
// xds/filter) and OnlyPassing, and Failover (as priorities). The route
// action carries PrefixRewrite, RequestTimeout (else the resolver's),
// IdleTimeout, a retry policy (Consul's mapping, plus by default the
// previous_hosts predicate with 3 host selection attempts), header changes
// and, for ring_hash/maglev, the resolver's hash policies. A target's
// cluster takes ConnectTimeout (UpstreamConfig's ConnectTimeoutMs, else the
// resolver's, else 5 s), LoadBalancer, and from the proxy's own
// service-defaults UpstreamConfig (Defaults, then the Overrides entry named
// like the upstream, then the registration's upstream Config keys
// connect_timeout_ms, limits and passive_health_check for that upstream,
// as Consul merges them; applied to every target of that upstream's chain,
// a split or redirect to another service included) Limits → circuit_breakers and
// PassiveHealthCheck → outlier_detection (always present, as Consul does,
// so Envoy's defaults apply when unset). Extension keys (extensions.go,
// "consulate_*" in an entry's Meta or the proxy-defaults Config) add retry
// back-off, per-try timeout, previous-hosts, retry budget, gateway-failure,
// success-rate and failure-percentage ejection, max ejection time and the
// panic threshold. The README's "Policy: Consul config entries" lists
// every field and key.
//
// An entry we cannot apply (weights not summing to 100, an RE2 error, a
// filter we cannot evaluate, a subset that does not exist, an unknown or
// misplaced extension key, a bad value, a redirect or splitter loop, a
// route to a service of another protocol) fails the translation of every
// consumer whose chains use it with an error wrapping *EntryError (entry
// kind/name and field): nothing is pushed half-applied, and the caller
// keeps the consumer's last good resources.
//
// # Proxyless gRPC resources (ForProxyless)
//
// Per service that has instances and is not a connect-proxy: API listener
// "<service>" (HttpConnectionManager, RDS over ADS, http_filters [router]),
// route configuration "<service>" (one virtual host, domains "<service>"
// and "<service>:*", the service's discovery chain as for sidecars), and
// the EDS cluster of every target reached, whose endpoints are the
// target's own instances. What grpc-go v1.85 would NACK is translated
// (MAGLEV → RING_HASH, RANDOM → ROUND_ROBIN, num_retries always >= 1) and
// what it ignores is left out (route timeouts, rewrites, header changes,
// non-gRPC retry conditions, query-parameter routes, consecutive_*
// ejection, retry budgets, panic threshold); each is a Warning on the
// Resources (Resources.Warnings) for the caller to log.
// ForProxylessKeeping isolates services: one whose chain fails to
// translate keeps its resources from the previous result (or has none)
// and is returned as a ServiceFailure; the others follow the model.
//
// # Protocol and health
//
// A service's protocol is resolved as Consul does: service-defaults
// Protocol, else proxy-defaults Config["protocol"], else tcp.
//
// Endpoint health is what Consul 1.14's own xDS server sends
// (agent/xds/endpoints.go, calculateEndpointHealthAndWeight; endpointHealth
// here): passing → HEALTHY, weight Weights.Passing; critical and
// maintenance → UNHEALTHY; warning → weight Weights.Warning, HEALTHY when
// IncludeWarningKey ("consulate_include_warning") is true in the
// destination's service-defaults Meta, or else in the proxy-defaults
// Config, UNHEALTHY otherwise (our default is Consul's OnlyPassing) and
// always UNHEALTHY in a resolver subset with OnlyPassing; a weight of 0
// (Weights.Warning 0) makes the endpoint UNHEALTHY, weight 1; weights are
// capped at 128; a registration without Weights weighs 1. Every endpoint
// sits in one locality of weight 1.
//
// Sidecars receive unhealthy endpoints too, marked UNHEALTHY: they take no
// traffic until fewer than healthy_panic_threshold (50 % by default,
// "consulate_healthy_panic_threshold") of a priority's endpoints are
// healthy; then Envoy and our sidecar route to all of them (panic). A
// Consul agent restart, which reports every non-TTL check critical until
// it runs again, thus costs no request. With failover, Consul keeps all
// load on the first priority with any healthy endpoint (its
// overprovisioning_factor 100000); we give the same loads without that
// field by sending only the healthy endpoints while any priority has one,
// and all of them (UNHEALTHY) when none has. Proxyless gRPC clients get
// only healthy endpoints: grpc-go drops the others and has no panic mode.
package xds
