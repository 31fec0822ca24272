// Package accesslog writes one structured (zap JSON) line per proxied
// request or TCP connection, with Envoy's response flags.
//
// With the binaries' JSON logger (package internal/logging) the line is
// encoded by hand, appended into a pooled buffer and handed to the
// logger's writer in one Write: the same bytes zap's JSON encoder writes
// for the same fields, in the same order (tests compare the two), at less
// than half the cost (issue 8). Any other logger (console format, tests'
// observers) gets the line as zap fields.
//
// A Logger is safe for concurrent use and holds no lock of its own (the
// writer or zap's core serializes the writes). Sampling draws from a
// lock-free random source; Off disables logging entirely.
package accesslog
