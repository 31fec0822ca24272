package discovery

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// rawRouter is a service-router entry whose first route has the given
// Match.HTTP and Destination.
func rawRouter(match, dest map[string]any) RawEntry {
	route := map[string]any{}
	if match != nil {
		route["Match"] = map[string]any{"HTTP": match}
	}
	if dest != nil {
		route["Destination"] = dest
	}
	return RawEntry{"Kind": "service-router", "Name": "web", "Routes": []any{route}}
}

func TestDecodeEntryErrors(t *testing.T) {
	tests := []struct {
		name    string
		kind    mesh.EntryKind
		raw     RawEntry
		field   string
		errPart string
	}{
		{"bad duration", mesh.KindServiceRouter,
			rawRouter(nil, map[string]any{"RequestTimeout": "5 parsecs"}), "Routes[0].Destination.RequestTimeout", "time: unknown unit"},
		{"bad resolver duration", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "soon"}, "ConnectTimeout", "invalid duration"},
		{"path regex not RE2", mesh.KindServiceRouter,
			rawRouter(map[string]any{"PathRegex": "/(?!admin)"}, nil), "Routes[0].Match.HTTP.PathRegex", "RE2"},
		{"header regex not RE2", mesh.KindServiceRouter,
			rawRouter(map[string]any{"Header": []any{map[string]any{"Name": "x", "Regex": "(a"}}}, nil), "Routes[0].Match.HTTP.Header[0].Regex", "missing closing )"},
		{"query regex not RE2", mesh.KindServiceRouter,
			rawRouter(map[string]any{"QueryParam": []any{map[string]any{"Name": "q", "Regex": `\1`}}}, nil), "Routes[0].Match.HTTP.QueryParam[0].Regex", "RE2"},
		{"weights do not sum to 100", mesh.KindServiceSplitter,
			RawEntry{"Kind": "service-splitter", "Name": "web", "Splits": []any{map[string]any{"Weight": 60.0}, map[string]any{"Weight": 30.0}}}, "Splits", "sum to 90.00"},
		{"negative weight", mesh.KindServiceSplitter,
			RawEntry{"Kind": "service-splitter", "Name": "web", "Splits": []any{map[string]any{"Weight": -10.0}, map[string]any{"Weight": 110.0}}}, "Splits[0].Weight", "negative"},
		{"unknown service protocol", mesh.KindServiceDefaults,
			RawEntry{"Kind": "service-defaults", "Name": "web", "Protocol": "htpp"}, "Protocol", `unknown protocol "htpp"`},
		{"unknown upstream override protocol", mesh.KindServiceDefaults,
			RawEntry{"Kind": "service-defaults", "Name": "web", "UpstreamConfig": map[string]any{"Overrides": []any{map[string]any{"Name": "api", "Protocol": "udp"}}}},
			"UpstreamConfig.Overrides[0].Protocol", `unknown protocol "udp"`},
		{"unknown proxy-defaults protocol", mesh.KindProxyDefaults,
			RawEntry{"Kind": "proxy-defaults", "Name": "global", "Config": map[string]any{"protocol": "quic"}}, "Config.protocol", `unknown protocol "quic"`},
		{"proxy-defaults protocol not a string", mesh.KindProxyDefaults,
			RawEntry{"Kind": "proxy-defaults", "Name": "global", "Config": map[string]any{"protocol": 7.0}}, "Config.protocol", "want a string"},
		{"unknown load balancer", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web", "LoadBalancer": map[string]any{"Policy": "fastest"}}, "LoadBalancer.Policy", `unknown policy "fastest"`},
		{"undefined default subset", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web", "DefaultSubset": "v9"}, "DefaultSubset", `"v9" is not defined`},
		{"kind mismatch", mesh.KindServiceRouter,
			RawEntry{"Kind": "service-splitter", "Name": "web", "Splits": []any{map[string]any{"Weight": 100.0}}}, "Kind", "listed under"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := mesh.EntryRef{Kind: tt.kind, Name: stringField(tt.raw, "Name")}
			d := decodeEntry(ref, tt.raw)
			if len(d.errs) != 1 {
				t.Fatalf("errors = %+v, want exactly one", d.errs)
			}
			e := d.errs[0]
			if e.Entry != ref || e.Field != tt.field || !strings.Contains(e.Err, tt.errPart) {
				t.Errorf("error = %+v, want entry %s, field %q, text containing %q", e, ref, tt.field, tt.errPart)
			}
			if d.router != nil || d.splitter != nil || d.resolver != nil || d.serviceDefaults != nil || d.proxyDefaults != nil {
				t.Errorf("a broken entry was decoded: %+v", d)
			}
		})
	}
}

func TestDecodeEntryAcceptsGoodValues(t *testing.T) {
	tests := []struct {
		name string
		kind mesh.EntryKind
		raw  RawEntry
		want mesh.Config
	}{
		{"split weights with 0.01 resolution", mesh.KindServiceSplitter,
			RawEntry{"Kind": "service-splitter", "Name": "web", "Splits": []any{map[string]any{"Weight": 33.33}, map[string]any{"Weight": 33.33}, map[string]any{"Weight": 33.34}}},
			mesh.Config{Splitters: map[string]*mesh.ServiceSplitter{"web": {Name: "web", Splits: []mesh.Split{{Weight: 33.33}, {Weight: 33.33}, {Weight: 33.34}}}}}},
		{"passive health check as Consul returns it (nanoseconds)", mesh.KindServiceDefaults,
			RawEntry{"Kind": "service-defaults", "Name": "web", "UpstreamConfig": map[string]any{"Defaults": map[string]any{
				"PassiveHealthCheck": map[string]any{"Interval": 1e10, "MaxFailures": 5.0, "BaseEjectionTime": 3e10}}}},
			mesh.Config{ServiceDefaults: map[string]*mesh.ServiceDefaults{"web": {Name: "web", UpstreamDefaults: &mesh.UpstreamConfig{
				PassiveHealthCheck: &mesh.PassiveHealthCheck{Interval: 10 * time.Second, MaxFailures: 5, BaseEjectionTime: ptr(30 * time.Second)}}}}}},
		{"resolver durations as strings, redirect", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web", "ConnectTimeout": "1.5s", "Redirect": map[string]any{"Service": "web-v2", "Datacenter": "dc2"}},
			mesh.Config{Resolvers: map[string]*mesh.ServiceResolver{"web": {Name: "web", ConnectTimeout: 1500 * time.Millisecond,
				Redirect: &mesh.ResolverRedirect{Service: "web-v2", Datacenter: "dc2"}}}}},
		{"failover by datacenters, least request", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web",
				"Failover":     map[string]any{"*": map[string]any{"Datacenters": []any{"dc2", "dc3"}}},
				"LoadBalancer": map[string]any{"Policy": "least_request", "LeastRequestConfig": map[string]any{"ChoiceCount": 3.0}}},
			mesh.Config{Resolvers: map[string]*mesh.ServiceResolver{"web": {Name: "web",
				Failover:     map[string]mesh.ResolverFailover{"*": {Datacenters: []string{"dc2", "dc3"}}},
				LoadBalancer: &mesh.LoadBalancer{Policy: "least_request", LeastRequestConfig: &mesh.LeastRequestConfig{ChoiceCount: 3}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newBuilder().buildConfig(map[mesh.EntryKind][]RawEntry{tt.kind: {tt.raw}}, nil)
			want := tt.want
			for _, m := range []func(*mesh.Config){
				func(c *mesh.Config) {
					if c.ServiceDefaults == nil {
						c.ServiceDefaults = map[string]*mesh.ServiceDefaults{}
					}
				},
				func(c *mesh.Config) {
					if c.Routers == nil {
						c.Routers = map[string]*mesh.ServiceRouter{}
					}
				},
				func(c *mesh.Config) {
					if c.Splitters == nil {
						c.Splitters = map[string]*mesh.ServiceSplitter{}
					}
				},
				func(c *mesh.Config) {
					if c.Resolvers == nil {
						c.Resolvers = map[string]*mesh.ServiceResolver{}
					}
				},
			} {
				m(&want)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildConfigKeepsLastGood: a broken entry is reported and its last
// good version stays; without one it is simply absent; a deleted entry is
// gone.
func TestBuildConfigKeepsLastGood(t *testing.T) {
	good := RawEntry{"Kind": "service-router", "Name": "web", "ModifyIndex": 10.0, "Routes": []any{map[string]any{
		"Match": map[string]any{"HTTP": map[string]any{"PathPrefix": "/v1"}}}}}
	bad := RawEntry{"Kind": "service-router", "Name": "web", "ModifyIndex": 11.0, "Routes": []any{map[string]any{
		"Match": map[string]any{"HTTP": map[string]any{"PathRegex": "(?<=x)"}}}}}
	b := newBuilder()
	first := b.buildConfig(map[mesh.EntryKind][]RawEntry{mesh.KindServiceRouter: {good}}, nil)
	wantRouter := &mesh.ServiceRouter{Name: "web", Routes: []mesh.Route{{Match: &mesh.RouteMatch{PathPrefix: "/v1"}}}}
	if diff := cmp.Diff(wantRouter, first.Routers["web"]); diff != "" {
		t.Fatalf("good router (-want +got):\n%s", diff)
	}

	t.Run("broken entry keeps the last good version", func(t *testing.T) {
		got := b.buildConfig(map[mesh.EntryKind][]RawEntry{mesh.KindServiceRouter: {bad}}, &first)
		if diff := cmp.Diff(wantRouter, got.Routers["web"]); diff != "" {
			t.Errorf("router (-want +got):\n%s", diff)
		}
		if len(got.Errors) != 1 || got.Errors[0].Field != "Routes[0].Match.HTTP.PathRegex" {
			t.Errorf("errors = %+v, want one on Routes[0].Match.HTTP.PathRegex", got.Errors)
		}
		// The next build starts from this one: still kept.
		again := b.buildConfig(map[mesh.EntryKind][]RawEntry{mesh.KindServiceRouter: {bad}}, &got)
		if again.Routers["web"] != first.Routers["web"] {
			t.Errorf("last good version lost on the second build")
		}
	})
	t.Run("broken entry without a good version is absent", func(t *testing.T) {
		got := newBuilder().buildConfig(map[mesh.EntryKind][]RawEntry{mesh.KindServiceRouter: {bad}}, nil)
		if got.Routers["web"] != nil || len(got.Errors) != 1 {
			t.Errorf("router = %+v, errors = %+v; want none and one error", got.Routers["web"], got.Errors)
		}
	})
	t.Run("deleted entry is gone", func(t *testing.T) {
		got := b.buildConfig(map[mesh.EntryKind][]RawEntry{}, &first)
		if got.Routers["web"] != nil || len(got.Errors) != 0 {
			t.Errorf("router = %+v, errors = %+v; want none", got.Routers["web"], got.Errors)
		}
	})
}
