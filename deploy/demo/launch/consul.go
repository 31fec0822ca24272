package launch

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/consul/api"
)

// Consul is a Consul dev agent started by StartConsul.
type Consul struct {
	*Process
	Client   *api.Client
	HTTPAddr string
}

// UIURL is the address of Consul's web UI.
func (c *Consul) UIURL() string { return "http://" + c.HTTPAddr + "/ui/" }

// StartConsul runs `consul agent -dev` with every port on a free loopback
// port (several dev agents on one host clash otherwise) and waits until it
// has a leader and its own node in the catalog.
func StartConsul(ctx context.Context, bin, dir string) (*Consul, error) {
	ports, err := FreePorts(7)
	if err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"node_name": "consulate-demo", "datacenter": "dc1",
		"bind_addr": "127.0.0.1", "advertise_addr": "127.0.0.1", "client_addr": "127.0.0.1",
		"data_dir": filepath.Join(dir, "consul-data"), "log_level": "warn",
		"disable_update_check": true, "ui_config": map[string]any{"enabled": true},
		"connect": map[string]any{"enabled": true},
		"ports": map[string]any{
			"http": ports[0], "dns": ports[1], "serf_lan": ports[2], "serf_wan": ports[3],
			"server": ports[4], "grpc": ports[5], "grpc_tls": ports[6],
		},
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "consul.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return nil, err
	}
	p, err := Start(Spec{Name: "consul", Path: bin, Args: []string{"agent", "-dev", "-config-file", cfgPath}, LogDir: dir})
	if err != nil {
		return nil, err
	}
	c := &Consul{Process: p, HTTPAddr: Addr(ports[0])}
	acfg := api.DefaultNonPooledConfig()
	acfg.Address = c.HTTPAddr
	if c.Client, err = api.NewClient(acfg); err != nil {
		p.Kill()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = poll(ctx, p.Done(), "consul leader and node", func() (bool, error) {
		leader, err := c.Client.Status().Leader()
		if err != nil || leader == "" {
			return false, fmt.Errorf("leader %q: %v", leader, err)
		}
		node, _, err := c.Client.Catalog().Node("consulate-demo", nil)
		if err != nil || node == nil || node.Node == nil {
			return false, fmt.Errorf("node not in catalog yet: %v", err)
		}
		return true, nil
	})
	if err != nil {
		p.Kill()
		return nil, fmt.Errorf("%w\n%s", err, p.LogTail(2000))
	}
	return c, nil
}
