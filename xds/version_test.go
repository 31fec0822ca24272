package xds

import (
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func TestVersions(t *testing.T) {
	forSidecar := func(t *testing.T, change func(*mesh.Snapshot)) *Resources {
		t.Helper()
		snap := testMesh()
		setProtocol(snap, "web", "http")
		setProtocol(snap, "api", "http")
		change(snap)
		res, err := ForSidecar(snap, testProxy)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	base := forSidecar(t, func(*mesh.Snapshot) {})
	for _, typ := range TypeURLs() {
		if base.Version(typ) == "" {
			t.Errorf("%s: empty version", typ)
		}
	}

	tests := []struct {
		name   string
		change func(*mesh.Snapshot)
		moved  []string // type URLs whose version must change; the rest must not
	}{
		{
			name:   "same input gives the same versions",
			change: func(*mesh.Snapshot) {},
		},
		{
			name: "instance order does not matter",
			change: func(s *mesh.Snapshot) {
				sc := s.Services["api"].Sidecars
				sc[0], sc[1] = sc[1], sc[0]
			},
		},
		{
			name:   "one endpoint's port moves only EDS",
			change: func(s *mesh.Snapshot) { s.Services["api"].Sidecars[1].Port = 21001 },
			moved:  []string{resource.EndpointType},
		},
		{
			name:   "one endpoint turning critical moves only EDS",
			change: func(s *mesh.Snapshot) { s.Services["api"].Sidecars[0].Health = mesh.HealthCritical },
			moved:  []string{resource.EndpointType},
		},
		{
			name:   "a raft index alone moves nothing",
			change: func(s *mesh.Snapshot) { s.Index = 4242 },
		},
		{
			name:   "upstream http to grpc moves only clusters (HTTP/2 options)",
			change: func(s *mesh.Snapshot) { setProtocol(s, "api", "grpc") },
			moved:  []string{resource.ClusterType},
		},
		{
			name:   "upstream http to tcp moves listeners and routes",
			change: func(s *mesh.Snapshot) { setProtocol(s, "api", "tcp") },
			moved:  []string{resource.ListenerType, resource.RouteType},
		},
		{
			name:   "new bind port moves only listeners",
			change: func(s *mesh.Snapshot) { proxy(s).Upstreams[0].LocalBindPort = 9999 },
			moved:  []string{resource.ListenerType},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := forSidecar(t, tt.change)
			for _, typ := range TypeURLs() {
				wantMoved := false
				for _, m := range tt.moved {
					wantMoved = wantMoved || m == typ
				}
				if moved := got.Version(typ) != base.Version(typ); moved != wantMoved {
					t.Errorf("%s: version moved = %v (%s → %s), want %v", typ, moved, base.Version(typ), got.Version(typ), wantMoved)
				}
			}
		})
	}
}

func TestSnapshotCarriesPerTypeVersions(t *testing.T) {
	res, err := ForSidecar(testMesh(), testProxy)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := res.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range TypeURLs() {
		if got, want := snap.GetVersion(typ), res.Version(typ); got != want {
			t.Errorf("%s: snapshot version %q, resources version %q", typ, got, want)
		}
		var names []string
		for name := range snap.GetResources(typ) {
			names = append(names, name)
		}
		if diff := cmp.Diff(res.Names(typ), names, sortStrings, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: names differ (-resources +snapshot):\n%s", typ, diff)
		}
	}
	// The tcp fixture has no route configuration; RDS is still present
	// (empty, versioned) so that the type gets an answer.
	if snap.GetVersion(resource.RouteType) == "" {
		t.Error("empty RDS type has no version")
	}
	if v1, v2 := snap.GetVersion(resource.ClusterType), snap.GetVersion(resource.EndpointType); v1 == v2 {
		t.Errorf("clusters and endpoints share version %q; want per-type versions", v1)
	}
}

func TestResourceVersions(t *testing.T) {
	build := func(t *testing.T, change func(*mesh.Snapshot)) *Resources {
		t.Helper()
		snap := testMesh()
		setProtocol(snap, "api", "http")
		proxy(snap).Upstreams = append(proxy(snap).Upstreams, mesh.Upstream{DestinationName: "db", LocalBindPort: 5432})
		change(snap)
		res, err := ForSidecar(snap, testProxy)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	before := build(t, func(*mesh.Snapshot) {})
	after := build(t, func(s *mesh.Snapshot) { s.Services["db"].Instances[0].Port = 6543 })

	for _, typ := range TypeURLs() {
		b, a := before.ResourceVersions(typ), after.ResourceVersions(typ)
		for name, v := range b {
			moved := a[name] != v
			wantMoved := typ == resource.EndpointType && name == "db.default.dc1.internal"
			if moved != wantMoved {
				t.Errorf("%s %q: version moved = %v, want %v", typ, name, moved, wantMoved)
			}
		}
	}

	// The snapshot carries them for delta xDS, with every type present like
	// go-control-plane's own ConstructVersionMap would leave it.
	snap, err := after.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.ConstructVersionMap(); err != nil {
		t.Fatal(err)
	}
	own := &cache.Snapshot{Resources: snap.Resources}
	if err := own.ConstructVersionMap(); err != nil {
		t.Fatal(err)
	}
	for typ, versions := range own.VersionMap {
		var ours []string
		for name := range snap.GetVersionMap(typ) {
			ours = append(ours, name)
		}
		var theirs []string
		for name := range versions {
			theirs = append(theirs, name)
		}
		if diff := cmp.Diff(theirs, ours, sortStrings, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: version map names (-go-control-plane +ours):\n%s", typ, diff)
		}
	}
	for _, typ := range TypeURLs() {
		if diff := cmp.Diff(after.ResourceVersions(typ), snap.GetVersionMap(typ)); diff != "" {
			t.Errorf("%s: snapshot version map (-resources +snapshot):\n%s", typ, diff)
		}
	}
}
