package xds

import (
	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Fixture: datacenter dc1; web (one instance, one sidecar) calls api (two
// instances, two sidecars) and db (two instances, no sidecars: not in the
// mesh). Cases change copies of it.

const (
	testDC    = "dc1"
	testProxy = "web-1-sidecar-proxy"
)

func instance(service, id, node, addr string, port int, health mesh.Health) mesh.Instance {
	return mesh.Instance{
		ID: id, Service: service, Node: node, Datacenter: testDC,
		Address: addr, Port: port, Health: health,
		Weights: mesh.Weights{Passing: 1, Warning: 1},
	}
}

func testMesh() *mesh.Snapshot {
	web := &mesh.Service{
		Name:      "web",
		Instances: []mesh.Instance{instance("web", "web-1", "node-1", "10.0.0.1", 8080, mesh.HealthPassing)},
		Sidecars:  []mesh.Instance{instance("web-sidecar-proxy", testProxy, "node-1", "10.0.0.1", 21000, mesh.HealthPassing)},
	}
	api := &mesh.Service{
		Name: "api",
		Instances: []mesh.Instance{
			instance("api", "api-1", "node-2", "10.0.0.2", 8080, mesh.HealthPassing),
			instance("api", "api-2", "node-3", "10.0.0.3", 8080, mesh.HealthPassing),
		},
		Sidecars: []mesh.Instance{
			instance("api-sidecar-proxy", "api-1-sidecar-proxy", "node-2", "10.0.0.2", 21000, mesh.HealthPassing),
			instance("api-sidecar-proxy", "api-2-sidecar-proxy", "node-3", "10.0.0.3", 21000, mesh.HealthPassing),
		},
	}
	db := &mesh.Service{
		Name: "db",
		Instances: []mesh.Instance{
			instance("db", "db-1", "node-4", "10.0.0.4", 5432, mesh.HealthPassing),
			instance("db", "db-2", "node-5", "10.0.0.5", 5432, mesh.HealthPassing),
		},
	}
	webProxy := &mesh.Service{Name: "web-sidecar-proxy", Kind: mesh.KindConnectProxy, Instances: web.Sidecars}
	apiProxy := &mesh.Service{Name: "api-sidecar-proxy", Kind: mesh.KindConnectProxy, Instances: api.Sidecars}
	return &mesh.Snapshot{
		Index:      42,
		Datacenter: testDC,
		Services: map[string]*mesh.Service{
			"web": web, "api": api, "db": db,
			"web-sidecar-proxy": webProxy, "api-sidecar-proxy": apiProxy,
		},
		Proxies: map[string]*mesh.Proxy{
			testProxy: {
				ID:                   testProxy,
				Name:                 "web-sidecar-proxy",
				Node:                 "node-1",
				Address:              "10.0.0.1",
				Port:                 21000,
				Health:               mesh.HealthPassing,
				DestinationService:   "web",
				DestinationServiceID: "web-1",
				LocalServicePort:     8080,
				Upstreams: []mesh.Upstream{
					{DestinationName: "api", LocalBindPort: 9191},
				},
			},
		},
		Config: mesh.Config{
			ServiceDefaults: map[string]*mesh.ServiceDefaults{},
		},
	}
}

// proxy returns the fixture's sidecar, for cases to change.
func proxy(s *mesh.Snapshot) *mesh.Proxy { return s.Proxies[testProxy] }

func setProtocol(s *mesh.Snapshot, service, protocol string) {
	s.Config.ServiceDefaults[service] = &mesh.ServiceDefaults{Name: service, Protocol: protocol}
}
