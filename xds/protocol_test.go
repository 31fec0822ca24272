package xds

import (
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func TestServiceProtocol(t *testing.T) {
	tests := []struct {
		name    string
		cfg     mesh.Config
		want    Protocol
		wantErr bool
	}{
		{name: "nothing set is tcp", want: ProtocolTCP},
		{
			name: "proxy-defaults",
			cfg:  mesh.Config{ProxyDefaults: &mesh.ProxyDefaults{Protocol: "http"}},
			want: ProtocolHTTP,
		},
		{
			name: "service-defaults wins",
			cfg: mesh.Config{
				ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http"},
				ServiceDefaults: map[string]*mesh.ServiceDefaults{"api": {Protocol: "grpc"}},
			},
			want: ProtocolGRPC,
		},
		{
			name: "service-defaults without protocol falls through",
			cfg: mesh.Config{
				ProxyDefaults:   &mesh.ProxyDefaults{Protocol: "http2"},
				ServiceDefaults: map[string]*mesh.ServiceDefaults{"api": {MaxInboundConnections: 3}},
			},
			want: ProtocolHTTP2,
		},
		{
			name: "case and spaces are forgiven",
			cfg:  mesh.Config{ServiceDefaults: map[string]*mesh.ServiceDefaults{"api": {Protocol: " HTTP "}}},
			want: ProtocolHTTP,
		},
		{
			name:    "unknown protocol",
			cfg:     mesh.Config{ServiceDefaults: map[string]*mesh.ServiceDefaults{"api": {Protocol: "mongo"}}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serviceProtocol(&tt.cfg, "api")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("serviceProtocol = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestTargetClusterName(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{name: "service", target: Target{Service: "api", Datacenter: "dc1"}, want: "api.default.dc1.internal"},
		{name: "subset", target: Target{Service: "api", Subset: "v2", Datacenter: "dc1"}, want: "v2.api.default.dc1.internal"},
		{name: "other datacenter", target: Target{Service: "api", Datacenter: "dc2"}, want: "api.default.dc2.internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.ClusterName(); got != tt.want {
				t.Errorf("ClusterName() = %q, want %q", got, tt.want)
			}
		})
	}
}
