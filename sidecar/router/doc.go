// Package router picks the virtual host and route for one HTTP request, the
// way Envoy's router does (envoy.config.route.v3), and computes the
// rewrites a route asks for (prefix_rewrite, regex_rewrite, redirect).
//
// A Table is compiled once from a config.RouteConfig and is immutable
// afterwards: any number of goroutines may call its methods at once without
// locks. Matching allocates nothing on the common path (the path and query
// are sliced out of the request target, headers are looked up with keys
// canonicalized at compile time).
//
// Virtual host selection follows Envoy's precedence: an exact domain, then
// the longest "*.suffix" wildcard (the "*" must stand for at least one
// character), then the longest "prefix.*" wildcard, then "*". Hosts compare
// case-insensitively. A Host header with a port is matched as sent first
// (so a domain "example.com:8080" matches it); if no domain matches it, it
// is matched again with the port stripped, before "*" is considered.
//
// Routes are tried in order; the first whose match holds wins. prefix
// matches the request target's path including the query string, path and
// safe_regex match the path without the query string (Envoy's documented
// semantics); safe_regex is a full match and ignores case_sensitive.
package router
