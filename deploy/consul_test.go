package deploy_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/consul/api"

	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestConsulRegistration: web.json is exactly an
// api.AgentServiceRegistration (no unknown field), web.hcl registers
// through the real `consul services register` to the same two services
// (web-1 and its sidecar web-1-sidecar-proxy) as web.json through the
// HTTP API, and proxy-defaults.hcl goes in with `consul config write`.
func TestConsulRegistration(t *testing.T) {
	var reg api.AgentServiceRegistration
	dec := json.NewDecoder(bytes.NewReader([]byte(readFile(t, "consul-examples/web.json"))))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		t.Fatalf("web.json is not an AgentServiceRegistration: %v", err)
	}
	if reg.Connect == nil || reg.Connect.SidecarService == nil || reg.Connect.SidecarService.Proxy == nil ||
		len(reg.Connect.SidecarService.Proxy.Upstreams) == 0 {
		t.Fatalf("web.json has no sidecar_service with upstreams: %+v", reg)
	}

	a := consultest.Start(t)
	bin, err := consultest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	consulCLI := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+a.HTTPAddr)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("consul %v: %v\n%s", args, err, out)
		}
	}
	registered := func() map[string]*api.AgentService {
		t.Helper()
		svcs, err := a.Client.Agent().Services()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"web-1", "web-1-sidecar-proxy"} {
			if svcs[id] == nil {
				t.Fatalf("no service %s registered; have %v", id, svcs)
			}
		}
		return svcs
	}

	consulCLI("services", "register", "consul-examples/web.hcl")
	fromHCL := registered()
	consulCLI("services", "deregister", "-id", "web-1")
	if err := a.Client.Agent().ServiceRegister(&reg); err != nil {
		t.Fatalf("registering web.json: %v", err)
	}
	fromJSON := registered()
	ignore := cmpopts.IgnoreFields(api.AgentService{}, "ContentHash", "CreateIndex", "ModifyIndex")
	// Consul's leader gives connect services a virtual IP some time after
	// the registration (for transparent proxying): not the files' doing.
	virtual := cmpopts.IgnoreMapEntries(func(k string, _ api.ServiceAddress) bool { return k == "consul-virtual" })
	if d := cmp.Diff(fromJSON, fromHCL, ignore, virtual); d != "" {
		t.Errorf("web.hcl and web.json register different services (-json +hcl):\n%s", d)
	}
	proxy := fromHCL["web-1-sidecar-proxy"]
	if proxy.Kind != api.ServiceKindConnectProxy || proxy.Proxy.DestinationServiceID != "web-1" || proxy.Port != 21000 {
		t.Errorf("sidecar registration = %+v, want a connect-proxy for web-1 on port 21000", proxy)
	}

	consulCLI("config", "write", "consul-examples/proxy-defaults.hcl")
	e, _, err := a.Client.ConfigEntries().Get(api.ProxyDefaults, api.ProxyConfigGlobal, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.(*api.ProxyConfigEntry).Config["protocol"]; got != "http" {
		t.Errorf("proxy-defaults protocol = %v, want http", got)
	}
}
