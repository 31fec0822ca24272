package discovery

import (
	"encoding/json"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// FuzzDecodeEntry feeds arbitrary JSON objects to the entry decoder: it
// must never panic, and must either decode the entry or say why not.
func FuzzDecodeEntry(f *testing.F) {
	for _, seed := range []string{
		`{"Kind":"service-router","Name":"web","Routes":[{"Match":{"HTTP":{"PathRegex":"/v[0-9]+","Header":[{"Name":"x","Regex":"(a"}]}},"Destination":{"RequestTimeout":"5s","NumRetries":2}}]}`,
		`{"Kind":"service-splitter","Name":"web","Splits":[{"Weight":50,"ServiceSubset":"v1"},{"Weight":50.5}]}`,
		`{"Kind":"service-resolver","Name":"web","DefaultSubset":"v1","Subsets":{"v1":{"Filter":"Service.Meta.v == 1"}},"ConnectTimeout":"1s","LoadBalancer":{"Policy":"ring_hash","HashPolicies":[{"Field":"cookie","CookieConfig":{"TTL":"10s"}}]}}`,
		`{"Kind":"service-defaults","Name":"web","Protocol":"http","UpstreamConfig":{"Defaults":{"ConnectTimeoutMs":-1,"PassiveHealthCheck":{"Interval":10000000000}},"Overrides":[null,{"Name":"a","Protocol":"grpc"}]}}`,
		`{"Kind":"proxy-defaults","Name":"global","Config":{"protocol":["http"],"x":{"y":1}}}`,
		`{"Kind":"service-router","Name":"web","Routes":"not a list"}`,
		`{"Kind":7}`,
		`{}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var raw RawEntry
		if json.Unmarshal([]byte(data), &raw) != nil || raw == nil {
			return
		}
		for _, kind := range entryKinds {
			d := decodeEntry(mesh.EntryRef{Kind: kind, Name: stringField(raw, "Name")}, raw)
			decoded := d.proxyDefaults != nil || d.serviceDefaults != nil || d.router != nil || d.splitter != nil || d.resolver != nil
			if decoded == (len(d.errs) > 0) {
				t.Fatalf("kind %s: decoded=%v with errors %+v", kind, decoded, d.errs)
			}
		}
	})
}
