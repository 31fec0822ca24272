// Package peers writes minimal, equivalent reverse-proxy configurations for
// the proxies the sidecar is compared with — nginx, HAProxy and Caddy — and
// the command lines that run them in the foreground as child processes
// with everything (config, pid, temp and log files) in one directory.
// Never the packages' system services.
//
// Equivalent means: one listener on a loopback port, everything forwarded
// to one upstream over a pool of keep-alive HTTP/1.1 connections, one
// worker (nginx worker_processes 1, HAProxy nbthread 1, Caddy with
// GOMAXPROCS=1 set by the caller), no access log, no retries, no caching
// or buffering to disk.
//
// Functions are pure; Write only writes files under the given directory.
package peers
