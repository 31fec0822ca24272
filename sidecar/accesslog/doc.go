// Package accesslog writes one structured (zap JSON) line per proxied
// request or TCP connection, with Envoy's response flags.
//
// A Logger is safe for concurrent use and holds no lock of its own (zap's
// core serializes the writes). Sampling draws from a lock-free random
// source; Off disables logging entirely.
package accesslog
