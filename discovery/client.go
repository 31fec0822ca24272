package discovery

import (
	"fmt"

	"github.com/hashicorp/consul/api"
)

// ClientConfig says how to reach Consul. Everything not set here comes from
// the environment exactly as Consul's CLI reads it (api.DefaultConfig):
// CONSUL_HTTP_ADDR (a unix:// or https:// address too), CONSUL_HTTP_TOKEN,
// CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL,
// CONSUL_HTTP_SSL_VERIFY, CONSUL_CACERT, CONSUL_CAPATH, CONSUL_CLIENT_CERT,
// CONSUL_CLIENT_KEY, CONSUL_TLS_SERVER_NAME, CONSUL_NAMESPACE and
// CONSUL_PARTITION.
type ClientConfig struct {
	// Address (host:port, or a URL with scheme) overrides CONSUL_HTTP_ADDR.
	Address string
	// Token overrides CONSUL_HTTP_TOKEN.
	Token string
	// Datacenter to query; empty means the agent's own.
	Datacenter string
}

// APIConfig returns the consul/api configuration NewClient uses.
func (c ClientConfig) APIConfig() *api.Config {
	cfg := api.DefaultConfig()
	if c.Address != "" {
		// api.NewClient parses a scheme prefix (http://, https://,
		// unix://) as it does for CONSUL_HTTP_ADDR; a bare host:port keeps
		// the scheme the environment chose (CONSUL_HTTP_SSL).
		cfg.Address = c.Address
	}
	if c.Token != "" {
		cfg.Token = c.Token
		cfg.TokenFile = ""
	}
	if c.Datacenter != "" {
		cfg.Datacenter = c.Datacenter
	}
	// The watcher keeps a handful of long-lived blocking queries and up to
	// Options.FetchConcurrency short fetches open: keep enough idle
	// connections to reuse them instead of redialing on every fetch.
	if t := cfg.Transport; t != nil && t.MaxIdleConnsPerHost < 32 {
		t.MaxIdleConnsPerHost = 32
	}
	return cfg
}

// NewClient returns a Consul API client configured from c and the
// environment.
func NewClient(c ClientConfig) (*api.Client, error) {
	client, err := api.NewClient(c.APIConfig())
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return client, nil
}
