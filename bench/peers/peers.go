package peers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Proxy names a peer.
type Proxy string

const (
	Nginx   Proxy = "nginx"
	HAProxy Proxy = "haproxy"
	Caddy   Proxy = "caddy"
)

// Params is what every config needs.
type Params struct {
	Listen   string // 127.0.0.1:port the proxy listens on
	Upstream string // 127.0.0.1:port of the application
	Dir      string // directory for the config, pid, temp and log files
}

// Config returns the configuration file's name (in p.Dir) and content.
func Config(px Proxy, p Params) (name, content string, err error) {
	switch px {
	case Nginx:
		return "nginx.conf", NginxConfig(p), nil
	case HAProxy:
		return "haproxy.cfg", HAProxyConfig(p), nil
	case Caddy:
		c, err := CaddyConfig(p)
		return "caddy.json", c, err
	}
	return "", "", fmt.Errorf("unknown proxy %q", px)
}

// Write writes px's config into p.Dir and returns the command line that
// runs it in the foreground.
func Write(px Proxy, p Params) ([]string, error) {
	name, content, err := Config(px, p)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(p.Dir, name)
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		return nil, err
	}
	return Command(px, p.Dir, file), nil
}

// Command is the foreground command line for px with config file.
func Command(px Proxy, dir, file string) []string {
	switch px {
	case Nginx:
		// -e: the error log before the config is read (else /var/log/nginx).
		return []string{"nginx", "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file}
	case HAProxy:
		return []string{"haproxy", "-db", "-f", file}
	case Caddy:
		return []string{"caddy", "run", "--config", file}
	}
	return nil
}

// NginxConfig: one worker, no master (the measured pid is the worker),
// upstream keepalive pool, HTTP/1.1 to the upstream with the Connection
// header cleared so the upstream connection is reused.
func NginxConfig(p Params) string {
	var b strings.Builder
	d := p.Dir
	fmt.Fprintf(&b, `daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path %s/client_body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    upstream app {
        server %s;
        keepalive 64;
        keepalive_requests 1000000;
    }
    server {
        listen %s;
        keepalive_requests 1000000;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, d, d, d, d, d, d, d, p.Upstream, p.Listen)
	return b.String()
}

// HAProxyConfig: one thread, HTTP mode, keep-alive on both sides, idle
// server connections reused by any client (http-reuse always).
func HAProxyConfig(p Params) string {
	return fmt.Sprintf(`global
    nbthread 1
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    option http-keep-alive
    http-reuse always

frontend bench
    bind %s
    default_backend app

backend app
    server app1 %s
`, p.Listen, p.Upstream)
}

// CaddyConfig: Caddy's native JSON, admin endpoint off, automatic HTTPS
// off, one reverse_proxy route (its transport keeps connections alive).
func CaddyConfig(p Params) (string, error) {
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{
			"level":  "ERROR",
			"writer": map[string]any{"output": "file", "filename": filepath.Join(p.Dir, "caddy.log")},
		}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(p.Dir, "caddy-data")},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"bench": map[string]any{
			"listen":          []string{p.Listen},
			"automatic_https": map[string]any{"disable": true},
			"routes": []any{map[string]any{"handle": []any{map[string]any{
				"handler":   "reverse_proxy",
				"upstreams": []any{map[string]any{"dial": p.Upstream}},
			}}}},
		}}}},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	return string(b) + "\n", err
}
