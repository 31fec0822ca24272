package xds

import (
	"fmt"
	"strings"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Protocol is what a service speaks, as Consul's protocol config names it.
type Protocol string

const (
	ProtocolTCP   Protocol = "tcp"
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTP2 Protocol = "http2"
	ProtocolGRPC  Protocol = "grpc"
)

// IsHTTP reports whether traffic is terminated by an HttpConnectionManager
// (L7) rather than forwarded as bytes by tcp_proxy.
func (p Protocol) IsHTTP() bool { return p != ProtocolTCP }

// UsesHTTP2 reports whether the upstream connection must speak HTTP/2 (h2c
// inside the mesh): gRPC always does.
func (p Protocol) UsesHTTP2() bool { return p == ProtocolHTTP2 || p == ProtocolGRPC }

// serviceProtocol resolves a service's protocol as Consul does:
// service-defaults[service].Protocol, else the proxy-defaults "protocol",
// else tcp. An unknown value is an error naming the entry it came from.
func serviceProtocol(cfg *mesh.Config, service string) (Protocol, error) {
	if sd := cfg.ServiceDefaults[service]; sd != nil && sd.Protocol != "" {
		p, err := parseProtocol(sd.Protocol)
		if err != nil {
			return "", fmt.Errorf("%s: %w", mesh.EntryRef{Kind: mesh.KindServiceDefaults, Name: service}, err)
		}
		return p, nil
	}
	if pd := cfg.ProxyDefaults; pd != nil && pd.Protocol != "" {
		p, err := parseProtocol(pd.Protocol)
		if err != nil {
			return "", fmt.Errorf("%s: %w", mesh.EntryRef{Kind: mesh.KindProxyDefaults, Name: "global"}, err)
		}
		return p, nil
	}
	return ProtocolTCP, nil
}

func parseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(strings.TrimSpace(s))); p {
	case ProtocolTCP, ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC:
		return p, nil
	}
	return "", fmt.Errorf("protocol %q is not one of tcp, http, http2, grpc", s)
}
