package main

import (
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	defaults := config{ConsulAddr: "127.0.0.1:8500", XDSAddr: "127.0.0.1:18000", AdminAddr: "127.0.0.1:19000",
		LogLevel: "info", LogFormat: "json", Debounce: 10 * time.Millisecond, Coalesce: 50 * time.Millisecond, Shutdown: 5 * time.Second}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(c config) config
		wantErr bool
	}{
		{name: "defaults", want: func(c config) config { return c }},
		{name: "CONSUL_HTTP_ADDR", env: map[string]string{"CONSUL_HTTP_ADDR": "10.0.0.1:8500"},
			want: func(c config) config { c.ConsulAddr = "10.0.0.1:8500"; return c }},
		{name: "CONSULATE_ env beats CONSUL_HTTP_ADDR", env: map[string]string{"CONSUL_HTTP_ADDR": "a:1", "CONSULATE_CONSUL_ADDR": "b:2"},
			want: func(c config) config { c.ConsulAddr = "b:2"; return c }},
		{name: "flag beats env", args: []string{"-xds-addr", "127.0.0.1:1"}, env: map[string]string{"CONSULATE_XDS_ADDR": "127.0.0.1:2"},
			want: func(c config) config { c.XDSAddr = "127.0.0.1:1"; return c }},
		{name: "every env var", env: map[string]string{"CONSULATE_ADMIN_ADDR": "x:1", "CONSULATE_LOG_LEVEL": "debug",
			"CONSULATE_LOG_FORMAT": "console", "CONSULATE_DEBOUNCE": "1s", "CONSULATE_COALESCE": "2s", "CONSULATE_SHUTDOWN_GRACE": "3s"},
			want: func(c config) config {
				c.AdminAddr, c.LogLevel, c.LogFormat, c.Debounce, c.Coalesce, c.Shutdown = "x:1", "debug", "console", time.Second, 2*time.Second, 3*time.Second
				return c
			}},
		{name: "bad log format", args: []string{"-log-format", "xml"}, wantErr: true},
		{name: "bad duration env", env: map[string]string{"CONSULATE_DEBOUNCE": "soon"}, wantErr: true},
		{name: "stray argument", args: []string{"serve"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("no error; got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want(defaults), got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
