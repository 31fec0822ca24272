// Package xds translates the mesh model (discovery/mesh) into Envoy v3
// resources: pure functions, no I/O, no Consul types.
//
// API contract (used by the control plane):
//
//	res, err := xds.ForSidecar(snap, proxyID)   // one connect-proxy's resources
//	res, err := xds.ForProxyless(snap)          // API listeners etc. for grpc-go xds:/// clients
//
// Both return a *Resources that has passed Validate() on every resource and
// the consistency check (including RDS names inside API listeners, which
// go-control-plane's Snapshot.Consistent does not see), with a version per
// type derived from content (same content, same version).
package xds
