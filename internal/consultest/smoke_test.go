package consultest

import (
	"testing"

	"github.com/hashicorp/consul/api"
)

// TestStartRegisterRestart proves the harness: two agents at once on
// distinct ports, a registration visible through the client, and a restart
// that brings the same agent back on the same address.
func TestStartRegisterRestart(t *testing.T) {
	a := Start(t)
	b := Start(t)
	if a.HTTPAddr == b.HTTPAddr {
		t.Fatalf("two agents share %s", a.HTTPAddr)
	}
	reg := &api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080, Address: "127.0.0.1"}
	if err := a.Client.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register: %v", err)
	}
	svcs, _, err := a.Client.Catalog().Service("web", "", nil)
	if err != nil || len(svcs) != 1 || svcs[0].ServicePort != 8080 {
		t.Fatalf("catalog web = %+v, %v; want one instance on 8080", svcs, err)
	}
	a.Restart()
	if _, err := a.Client.Agent().Self(); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
