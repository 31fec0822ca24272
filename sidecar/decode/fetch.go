package decode

import (
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// DefaultInitialFetchTimeout is Envoy's ConfigSource.initial_fetch_timeout
// default: how long warming waits for a resource before proceeding
// without it.
const DefaultInitialFetchTimeout = 15 * time.Second

// InitialFetchTimeout is cs.initial_fetch_timeout with Envoy's default;
// 0 means wait forever.
func InitialFetchTimeout(cs *corev3.ConfigSource) time.Duration {
	return duration(cs.GetInitialFetchTimeout(), DefaultInitialFetchTimeout)
}

// RDSConfigSource returns the rds.config_source of a listener's
// HttpConnectionManager, or nil when it has none. Call it only on a
// listener Listener accepted.
func RDSConfigSource(l *listenerv3.Listener) *corev3.ConfigSource {
	fcs := l.GetFilterChains()
	if len(fcs) == 0 || len(fcs[0].GetFilters()) == 0 {
		return nil
	}
	tc := fcs[0].GetFilters()[0].GetTypedConfig()
	var hcm hcmv3.HttpConnectionManager
	if tc == nil || !tc.MessageIs(&hcm) || tc.UnmarshalTo(&hcm) != nil {
		return nil
	}
	return hcm.GetRds().GetConfigSource()
}
