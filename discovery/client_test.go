package discovery

import (
	"testing"
)

func TestClientConfigHonoursEnvironment(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "https://consul.example:8501")
	t.Setenv("CONSUL_HTTP_TOKEN", "env-token")
	t.Setenv("CONSUL_CACERT", "/etc/consul/ca.pem")
	t.Setenv("CONSUL_CLIENT_CERT", "/etc/consul/client.pem")
	t.Setenv("CONSUL_CLIENT_KEY", "/etc/consul/client-key.pem")
	t.Setenv("CONSUL_TLS_SERVER_NAME", "server.dc1.consul")
	t.Setenv("CONSUL_HTTP_SSL_VERIFY", "false")

	t.Run("environment only", func(t *testing.T) {
		cfg := ClientConfig{}.APIConfig()
		// api.NewClient takes the scheme from the address prefix.
		if cfg.Address != "https://consul.example:8501" || cfg.Token != "env-token" {
			t.Errorf("address, token = %q, %q", cfg.Address, cfg.Token)
		}
		tls := cfg.TLSConfig
		if tls.CAFile != "/etc/consul/ca.pem" || tls.CertFile != "/etc/consul/client.pem" || tls.KeyFile != "/etc/consul/client-key.pem" ||
			tls.Address != "server.dc1.consul" || !tls.InsecureSkipVerify {
			t.Errorf("TLS config = %+v", tls)
		}
	})
	t.Run("overrides win", func(t *testing.T) {
		cfg := ClientConfig{Address: "http://127.0.0.1:8500", Token: "flag-token", Datacenter: "dc9"}.APIConfig()
		if cfg.Address != "http://127.0.0.1:8500" || cfg.Token != "flag-token" || cfg.Datacenter != "dc9" {
			t.Errorf("address, token, dc = %q, %q, %q", cfg.Address, cfg.Token, cfg.Datacenter)
		}
	})
}

func TestClientConfigSSLFlag(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "127.0.0.1:8501")
	t.Setenv("CONSUL_HTTP_SSL", "true")
	if cfg := (ClientConfig{}).APIConfig(); cfg.Scheme != "https" {
		t.Errorf("scheme = %q, want https from CONSUL_HTTP_SSL", cfg.Scheme)
	}
}

func TestNewClientReportsBadTLSFiles(t *testing.T) {
	t.Setenv("CONSUL_CLIENT_CERT", "/nonexistent/client.pem")
	t.Setenv("CONSUL_CLIENT_KEY", "/nonexistent/client-key.pem")
	if _, err := NewClient(ClientConfig{Address: "https://127.0.0.1:8501"}); err == nil {
		t.Fatal("NewClient accepted missing client certificate files")
	}
}
