package xds

import (
	"errors"
	"maps"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// TestProxylessKeepsABrokenServiceLastGood: one service's broken config
// entry does not freeze the others' proxyless configuration. The broken
// service keeps exactly its last good resources (or has none if it never
// translated) and is reported with its entry; another service's change
// goes through; the strict ForProxyless still fails.
func TestProxylessKeepsABrokenServiceLastGood(t *testing.T) {
	prev, failed, err := ForProxylessKeeping(testMesh(), nil)
	if err != nil || len(failed) != 0 {
		t.Fatalf("good mesh: failures %v, err %v", failed, err)
	}

	broken := testMesh()
	broken.Config.Splitters = map[string]*mesh.ServiceSplitter{"api": {Name: "api", Splits: []mesh.Split{{Weight: 60}, {Weight: 30, Service: "db"}}}}
	broken.Services["db"].Instances = broken.Services["db"].Instances[:1] // db loses an instance meanwhile

	res, failed, err := ForProxylessKeeping(broken, prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Service != "api" || !failed[0].Kept {
		t.Fatalf("failures = %+v, want api, kept", failed)
	}
	var ee *EntryError
	if !errors.As(failed[0].Err, &ee) || ee.Entry.String() != "service-splitter/api" {
		t.Errorf("api's failure %v does not name service-splitter/api", failed[0].Err)
	}
	for _, typ := range []string{resource.ListenerType, resource.RouteType} {
		if got, want := res.ResourceVersions(typ)["api"], prev.ResourceVersions(typ)["api"]; got == "" || got != want {
			t.Errorf("%s api: version %q, want the last good %q", typ, got, want)
		}
	}
	const apiCluster, dbCluster = "api.default." + testDC + ".internal", "db.default." + testDC + ".internal"
	if got, want := res.ResourceVersions(resource.EndpointType)[apiCluster], prev.ResourceVersions(resource.EndpointType)[apiCluster]; got != want {
		t.Errorf("api's endpoints changed (%q → %q) although its translation failed", want, got)
	}
	if got, was := res.ResourceVersions(resource.EndpointType)[dbCluster], prev.ResourceVersions(resource.EndpointType)[dbCluster]; got == was {
		t.Error("db's endpoints did not follow the model: one broken service froze the others")
	}
	if maps.Equal(res.ResourceVersions(resource.ListenerType), map[string]string{}) {
		t.Error("no listeners")
	}

	if _, err := ForProxyless(broken); !errors.As(err, &ee) {
		t.Errorf("strict ForProxyless: err = %v, want the entry error", err)
	}
	fresh, failed, err := ForProxylessKeeping(broken, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0].Kept {
		t.Errorf("failures without a last good result = %+v, want api, not kept", failed)
	}
	if _, ok := fresh.ResourceVersions(resource.ListenerType)["api"]; ok {
		t.Error("api has a listener although it never translated")
	}
	if _, ok := fresh.ResourceVersions(resource.ListenerType)["db"]; !ok {
		t.Error("db has no listener")
	}
}
