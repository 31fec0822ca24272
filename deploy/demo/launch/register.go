package launch

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/consul/api"
)

// Upstream is one upstream a service's sidecar declares.
type Upstream struct {
	Service       string
	LocalBindPort int
}

// Instance is one service instance and its sidecar, as registered.
type Instance struct {
	Service string
	// ID is the instance's service ID; its sidecar is <ID>-sidecar-proxy.
	ID          string
	Version     string
	AppPort     int
	SidecarPort int
	Upstreams   []Upstream
}

// ProxyID is the sidecar's Consul service ID, the xDS node id.
func (i Instance) ProxyID() string { return i.ID + "-sidecar-proxy" }

// Registration is how a Consul user registers the instance: the service
// with an HTTP check on the app, and a connect.sidecar_service with its
// upstreams. The sidecar's checks are those Consul would add by default
// (a TCP check on the sidecar port and an alias of the service) but with a
// 1 s interval instead of 10 s, so a new sidecar gets traffic within a
// second of listening.
func (i Instance) Registration() *api.AgentServiceRegistration {
	ups := make([]api.Upstream, 0, len(i.Upstreams))
	for _, u := range i.Upstreams {
		ups = append(ups, api.Upstream{DestinationName: u.Service, LocalBindPort: u.LocalBindPort})
	}
	return &api.AgentServiceRegistration{
		ID: i.ID, Name: i.Service, Address: "127.0.0.1", Port: i.AppPort,
		Meta: map[string]string{"version": i.Version},
		Tags: []string{i.Version},
		Check: &api.AgentServiceCheck{
			Name: "app health", HTTP: "http://" + Addr(i.AppPort) + "/healthz",
			Interval: "1s", Timeout: "1s",
		},
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port: i.SidecarPort,
			Meta: map[string]string{"version": i.Version},
			Checks: api.AgentServiceChecks{
				{Name: "Connect Sidecar Listening", TCP: Addr(i.SidecarPort), Interval: "1s"},
				{Name: "Connect Sidecar Aliasing " + i.ID, AliasService: i.ID},
			},
			Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: ups},
		}},
	}
}

// Register registers the instance with the agent.
func Register(c *api.Client, i Instance) error {
	if err := c.Agent().ServiceRegister(i.Registration()); err != nil {
		return fmt.Errorf("register %s: %w", i.ID, err)
	}
	return nil
}

// SetProtocol writes proxy-defaults global with Config.protocol, as
// `consul config write` would (Consul's default protocol is tcp).
func SetProtocol(c *api.Client, protocol string) error {
	_, _, err := c.ConfigEntries().Set(&api.ProxyConfigEntry{
		Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": protocol},
	}, nil)
	if err != nil {
		return fmt.Errorf("proxy-defaults protocol=%s: %w", protocol, err)
	}
	return nil
}

// PortOf returns the port of a host:port address, or 0.
func PortOf(addr string) int {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			p, _ := strconv.Atoi(addr[i+1:])
			return p
		}
	}
	return 0
}
