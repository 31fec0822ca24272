package peers

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConfig checks what makes the configs equivalent: the listen and
// upstream addresses, one worker, keep-alive to the upstream, no access
// log, and every file path under the given directory.
func TestConfig(t *testing.T) {
	p := Params{Listen: "127.0.0.1:18001", Upstream: "127.0.0.1:18002", Dir: "/tmp/pb"}
	tests := []struct {
		name     Proxy
		file     string
		contains []string
	}{
		{Nginx, "nginx.conf", []string{
			"worker_processes 1;", "master_process off;", "daemon off;", "access_log off;",
			"listen 127.0.0.1:18001;", "server 127.0.0.1:18002;", "keepalive 64;",
			"proxy_http_version 1.1;", `proxy_set_header Connection "";`, "pid /tmp/pb/nginx.pid;",
		}},
		{HAProxy, "haproxy.cfg", []string{
			"nbthread 1", "mode http", "option http-keep-alive", "http-reuse always",
			"bind 127.0.0.1:18001", "server app1 127.0.0.1:18002",
		}},
		{Caddy, "caddy.json", []string{
			`"disabled": true`, `"127.0.0.1:18001"`, `"dial": "127.0.0.1:18002"`, `"handler": "reverse_proxy"`,
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.name), func(t *testing.T) {
			file, content, err := Config(tt.name, p)
			if err != nil {
				t.Fatal(err)
			}
			if file != tt.file {
				t.Errorf("file = %q, want %q", file, tt.file)
			}
			for _, want := range tt.contains {
				if !strings.Contains(content, want) {
					t.Errorf("config lacks %q:\n%s", want, content)
				}
			}
			for _, l := range strings.Split(content, "\n") {
				for _, f := range strings.Fields(l) {
					f = strings.Trim(f, `";,`)
					if len(f) > 1 && strings.HasPrefix(f, "/") && !strings.HasPrefix(f, p.Dir) {
						t.Errorf("path %q outside %s", f, p.Dir)
					}
				}
			}
		})
	}
	if _, _, err := Config("envoy", p); err == nil {
		t.Error(`Config("envoy"): want an error`)
	}
}

func TestCaddyConfigIsJSON(t *testing.T) {
	c, err := CaddyConfig(Params{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Dir: "/d"})
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(c), &v); err != nil {
		t.Fatalf("caddy config is not JSON: %v", err)
	}
	if d := cmp.Diff([]string{"admin", "apps", "logging", "storage"}, slices.Sorted(maps.Keys(v))); d != "" {
		t.Errorf("top-level keys (-want +got):\n%s", d)
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	for _, px := range []Proxy{Nginx, HAProxy, Caddy} {
		t.Run(string(px), func(t *testing.T) {
			argv, err := Write(px, Params{Listen: "127.0.0.1:1", Upstream: "127.0.0.1:2", Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(argv) == 0 || argv[0] != string(px) {
				t.Fatalf("command = %v, want it to run %s", argv, px)
			}
			name, _, _ := Config(px, Params{})
			file := filepath.Join(dir, name)
			if _, err := os.Stat(file); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(argv, " "), file) {
				t.Errorf("command %v does not name %s", argv, file)
			}
		})
	}
}
