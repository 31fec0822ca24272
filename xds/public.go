package xds

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

const (
	defaultPublicAddress   = "0.0.0.0"
	defaultLoopbackAddress = "127.0.0.1"
)

// Keys of a proxy registration's Config map that Consul documents for the
// Envoy integration and that shape the inbound side.
const (
	configBindAddress           = "bind_address"
	configBindPort              = "bind_port"
	configLocalConnectTimeoutMs = "local_connect_timeout_ms"
	configLocalRequestTimeoutMs = "local_request_timeout_ms"
)

// publicSettings are the knobs of a sidecar's inbound side.
type publicSettings struct {
	protocol       Protocol
	bindHost       string
	bindPort       int
	localHost      string
	localPort      int
	connectTimeout time.Duration
	// requestTimeout is the local_app route's timeout; nil keeps Envoy's
	// route default (15 s), zero disables it (Consul:
	// local_request_timeout_ms "A value of 0 will disable request timeouts").
	requestTimeout *time.Duration
}

// resolvePublic reads the inbound settings as Consul does: the proxy
// registration's Config keys first (bind_address, bind_port,
// local_connect_timeout_ms, local_request_timeout_ms; registration config
// wins over central config in Consul), then the fronted service's
// service-defaults (LocalConnectTimeoutMs, LocalRequestTimeoutMs), then
// the registration's address and port and the defaults.
func resolvePublic(snap *mesh.Snapshot, p *mesh.Proxy) (publicSettings, error) {
	s := publicSettings{
		bindHost:       orDefault(p.Address, defaultPublicAddress),
		bindPort:       p.Port,
		localHost:      orDefault(p.LocalServiceAddress, defaultLoopbackAddress),
		localPort:      p.LocalServicePort,
		connectTimeout: DefaultConnectTimeout,
	}
	var err error
	if s.protocol, err = serviceProtocol(&snap.Config, p.DestinationService); err != nil {
		return s, err
	}
	if sd := snap.Config.ServiceDefaults[p.DestinationService]; sd != nil {
		if sd.LocalConnectTimeout > 0 {
			s.connectTimeout = sd.LocalConnectTimeout
		}
		if sd.LocalRequestTimeout > 0 {
			s.requestTimeout = &sd.LocalRequestTimeout
		}
	}
	if v, ok := p.Config[configBindAddress]; ok && v != "" {
		s.bindHost = v
	}
	if v, ok := p.Config[configBindPort]; ok {
		n, err := configInt(configBindPort, v)
		if err != nil {
			return s, err
		}
		s.bindPort = n
	}
	if v, ok := p.Config[configLocalConnectTimeoutMs]; ok {
		n, err := configInt(configLocalConnectTimeoutMs, v)
		if err != nil {
			return s, err
		}
		if n > 0 {
			s.connectTimeout = time.Duration(n) * time.Millisecond
		}
	}
	if v, ok := p.Config[configLocalRequestTimeoutMs]; ok {
		n, err := configInt(configLocalRequestTimeoutMs, v)
		if err != nil {
			return s, err
		}
		d := time.Duration(n) * time.Millisecond
		s.requestTimeout = &d
	}
	if s.bindPort <= 0 || s.bindPort > 65535 {
		return s, fmt.Errorf("proxy port %d is not a TCP port", s.bindPort)
	}
	if s.localPort <= 0 || s.localPort > 65535 {
		return s, fmt.Errorf("local service port %d is not a TCP port", s.localPort)
	}
	return s, nil
}

// configInt parses a proxy Config value: a non-negative whole number
// (Consul renders JSON numbers in decimal, possibly as "5000.0").
func configInt(key, v string) (int, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f != math.Trunc(f) || f > math.MaxInt32 {
		return 0, fmt.Errorf("proxy Config[%s] = %q is not a non-negative whole number", key, v)
	}
	return int(f), nil
}

// publicResources are the public listener and the local_app cluster.
func publicResources(snap *mesh.Snapshot, p *mesh.Proxy) ([]types.Resource, error) {
	s, err := resolvePublic(snap, p)
	if err != nil {
		return nil, fmt.Errorf("listeners for %s: %s: %w", p.ID, PublicListenerName, err)
	}
	listener, err := publicListener(s.bindHost, s.bindPort, s.protocol, s.requestTimeout)
	if err != nil {
		return nil, fmt.Errorf("listeners for %s: %w", p.ID, err)
	}
	cluster, err := localAppCluster(s.localHost, s.localPort, s.protocol, s.connectTimeout)
	if err != nil {
		return nil, fmt.Errorf("clusters for %s: %w", p.ID, err)
	}
	return []types.Resource{listener, cluster}, nil
}
