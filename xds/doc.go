// Package xds translates the mesh model (discovery/mesh) into Envoy v3
// resources: pure functions, no I/O, no globals, no Consul types.
//
// API contract (used by the control plane):
//
//	res, err := xds.ForSidecar(snap, proxyID)   // one connect-proxy's resources
//	res, err := xds.ForProxyless(snap)          // API listeners etc. for grpc-go xds:/// clients
//	cs, err := res.Snapshot()                   // go-control-plane *cache.Snapshot, per-type versions
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
//     "<id>" (virtual host "<id>", domains ["*"], prefix "/" → the target's
//     cluster), tcp → tcp_proxy to the target's cluster.
//   - per target (service, subset, datacenter) an EDS cluster over ADS
//     named as Target.ClusterName documents ("<service>.default.<dc>.internal",
//     later "<subset>.<service>.default.<dc>.internal"), connect_timeout 5 s,
//     HTTP/2 protocol options for http2/grpc; and its ClusterLoadAssignment:
//     the service's sidecars if it has any, else its own instances.
//
// # Proxyless gRPC resources (ForProxyless)
//
// Per service that has instances and is not a connect-proxy: API listener
// "<service>" (HttpConnectionManager, RDS over ADS, http_filters [router]),
// route configuration "<service>" (one virtual host, domains "<service>"
// and "<service>:*", prefix "/" → cluster), EDS cluster named like a
// sidecar's target cluster, whose endpoints are the service's own instances.
//
// # Protocol and health
//
// A service's protocol is resolved as Consul does: service-defaults
// Protocol, else proxy-defaults Config["protocol"], else tcp. Only passing
// instances receive traffic. Instances in warning do too when
// IncludeWarningKey ("consulate_include_warning") is true in the
// destination's service-defaults Meta, or else in the proxy-defaults Config;
// they then weigh Weights.Warning. Every endpoint is HEALTHY (unhealthy ones
// are left out rather than marked, so that grpc-go and the sidecar agree),
// weighs Weights.Passing (default 1), and sits in one locality of weight 1.
package xds
