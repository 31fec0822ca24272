package xds

import (
	"errors"
	"fmt"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// FuzzForSidecar builds meshes from fuzz input and requires ForSidecar to
// either fail with an error or return resources that pass Validate (it
// returns them validated, so here: never panic, and a result implies a
// go-control-plane snapshot can be made).
func FuzzForSidecar(f *testing.F) {
	f.Add("http", "tcp", uint16(21000), uint16(9191), uint16(9192), uint8(0), "10.0.0.1", "")
	f.Add("grpc", "http2", uint16(0), uint16(9191), uint16(9191), uint8(3), "", "dc2")
	f.Add("HTTP", "bogus", uint16(65535), uint16(1), uint16(2), uint8(255), "::1", "dc1")
	f.Fuzz(func(t *testing.T, webProto, apiProto string, port, bind1, bind2 uint16, health uint8, addr, dc string) {
		snap := testMesh()
		setProtocol(snap, "web", webProto)
		setProtocol(snap, "api", apiProto)
		p := proxy(snap)
		p.Port = int(port)
		p.Address = addr
		p.Upstreams = []mesh.Upstream{
			{DestinationName: "api", LocalBindPort: int(bind1)},
			{DestinationName: "db", Datacenter: dc, LocalBindPort: int(bind2)},
		}
		states := []mesh.Health{mesh.HealthPassing, mesh.HealthWarning, mesh.HealthCritical, mesh.HealthMaintenance}
		for i := range snap.Services["api"].Sidecars {
			snap.Services["api"].Sidecars[i].Health = states[(int(health)>>(2*i))%len(states)]
			snap.Services["api"].Sidecars[i].Address = fmt.Sprintf("%s%d", addr, i)
		}
		res, err := ForSidecar(snap, testProxy)
		if err != nil {
			if errors.Is(err, ErrUnknownProxy) {
				t.Fatalf("known proxy reported unknown: %v", err)
			}
			return
		}
		if _, err := res.Snapshot(); err != nil {
			t.Fatalf("Snapshot: %v", err)
		}
		if err := Validate(res); err != nil {
			t.Fatalf("ForSidecar returned resources that fail Validate: %v", err)
		}
	})
}
