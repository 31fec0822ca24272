// Package xdsstatic serves a fixed xDS configuration to benchmark sidecars:
// the real go-control-plane ADS server (SotW and Delta) with a
// SnapshotCache holding one snapshot per node, on a loopback listener. A
// sidecar takes its config over xDS only, so a standalone benchmark needs
// a control plane; this one needs no Consul.
//
// Snapshots are built from Forward values (listener → route → EDS cluster
// → endpoints) with the builders of sidecar/decode/decodetest, the same
// shapes the Consulate control plane sends, or by Many (one listener whose
// route configuration has n virtual hosts, each to its own cluster) for
// the memory figure with 10,000 routes and clusters.
//
// Concurrency: Serve runs the gRPC server until its context is done, then
// stops it and returns; the snapshots are set before it serves and never
// change. Builders are pure.
package xdsstatic
