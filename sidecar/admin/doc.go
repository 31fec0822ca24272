// Package admin is the sidecar's loopback admin HTTP endpoint:
//
//	/ready        200 once the first complete config is applied, 503 before
//	/config_dump  the xDS resources the sidecar runs (protojson), by type
//	/clusters     every cluster and host with health, weight, priority,
//	              locality, and live state when the data path reports it
//	              (?format=json for JSON)
//	/metrics      Prometheus exposition of the shared registry
//
// The admin server refuses to listen on a non-loopback address: it exposes
// configuration and is unauthenticated.
//
// Concurrency contract: handlers only read through the functions given in
// Options (atomic loads in the xDS client) and the host-stats hook, which
// SetHostStats swaps atomically, called once per /clusters request; it must be safe for
// concurrent use. Run serves until its context is done, then shuts the
// server down.
package admin
