package decode

import (
	"fmt"
	"strings"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Envoy defaults for the listener subset we implement.
const (
	defaultBufferLimit       = 1 << 20         // Listener.per_connection_buffer_limit_bytes
	defaultStreamIdleTimeout = 5 * time.Minute // HttpConnectionManager.stream_idle_timeout
	defaultTCPIdleTimeout    = time.Hour       // TcpProxy.idle_timeout
	routerFilterName         = "envoy.filters.http.router"
)

// Listener decodes one LDS resource.
func Listener(l *listenerv3.Listener) (*config.Listener, error) {
	out, err := listener(l)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", l.GetName(), err)
	}
	return out, nil
}

func listener(l *listenerv3.Listener) (*config.Listener, error) {
	if err := checkSupported(l); err != nil {
		return nil, err
	}
	if err := validate(l); err != nil {
		return nil, err
	}
	if l.GetName() == "" {
		return nil, fmt.Errorf("name is required")
	}
	addr, err := socketAddress(l.GetAddress(), "address")
	if err != nil {
		return nil, err
	}
	out := &config.Listener{
		Name:                          l.GetName(),
		Address:                       addr,
		PerConnectionBufferLimitBytes: u32(l.GetPerConnectionBufferLimitBytes(), defaultBufferLimit),
	}
	// Without filter_chain_match (not implemented) only one chain can ever
	// be selected, so more than one would be silently dead configuration.
	if n := len(l.GetFilterChains()); n != 1 {
		return nil, fmt.Errorf("filter_chains: want exactly 1 filter chain, got %d", n)
	}
	filters := l.GetFilterChains()[0].GetFilters()
	if n := len(filters); n != 1 {
		return nil, fmt.Errorf("filter_chains[0].filters: want exactly 1 (http_connection_manager or tcp_proxy), got %d", n)
	}
	const field = "filter_chains[0].filters[0].typed_config"
	tc := filters[0].GetTypedConfig()
	if tc == nil {
		return nil, fmt.Errorf("%s is required", field)
	}
	msg, err := tc.UnmarshalNew()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	switch m := msg.(type) {
	case *hcmv3.HttpConnectionManager:
		out.HTTP, err = httpConnectionManager(m)
	case *tcpv3.TcpProxy:
		out.TCP, err = tcpProxy(m)
	default:
		return nil, fmt.Errorf("%s: type %q is not a network filter we implement", field, tc.GetTypeUrl())
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return out, nil
}

func httpConnectionManager(m *hcmv3.HttpConnectionManager) (*config.HTTPConnectionManager, error) {
	if err := validate(m); err != nil {
		return nil, err
	}
	var codec config.Codec
	switch m.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		codec = config.CodecAuto
	case hcmv3.HttpConnectionManager_HTTP1:
		codec = config.CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		codec = config.CodecHTTP2
	default:
		return nil, fmt.Errorf("codec_type: %s is not supported (AUTO, HTTP1 or HTTP2; the sidecar has no HTTP/3)", m.GetCodecType())
	}
	out := &config.HTTPConnectionManager{
		StatPrefix:        m.GetStatPrefix(),
		StreamIdleTimeout: duration(m.GetStreamIdleTimeout(), defaultStreamIdleTimeout),
		RequestTimeout:    duration(m.GetRequestTimeout(), 0),
		UseRemoteAddress:  boolean(m.GetUseRemoteAddress(), false),
		GenerateRequestID: boolean(m.GetGenerateRequestId(), true),
		Codec:             codec,
	}
	switch {
	case m.GetRds() != nil:
		rds := m.GetRds()
		if err := adsSource(rds.GetConfigSource(), "rds.config_source"); err != nil {
			return nil, err
		}
		if rds.GetRouteConfigName() == "" {
			return nil, fmt.Errorf("rds.route_config_name is required")
		}
		out.RouteConfigName = rds.GetRouteConfigName()
	case m.GetRouteConfig() != nil:
		rc, err := RouteConfiguration(m.GetRouteConfig())
		if err != nil {
			return nil, fmt.Errorf("route_config: %w", err)
		}
		out.Inline = rc
	default:
		return nil, fmt.Errorf("rds or route_config is required")
	}
	if err := httpFilters(m.GetHttpFilters()); err != nil {
		return nil, err
	}
	for i, u := range m.GetUpgradeConfigs() {
		// The proxy passes WebSocket upgrades through; nothing else, and
		// it cannot turn them off.
		if !strings.EqualFold(u.GetUpgradeType(), "websocket") {
			return nil, fmt.Errorf("upgrade_configs[%d].upgrade_type: %q is not supported (only websocket)", i, u.GetUpgradeType())
		}
		if !boolean(u.GetEnabled(), true) {
			return nil, fmt.Errorf("upgrade_configs[%d].enabled: disabling websocket is not supported", i)
		}
	}
	return out, nil
}

// httpFilters accepts the router, which must be last (Envoy rejects a
// chain not ending in its terminal filter), after any number of filters the
// sidecar may skip as Envoy does (see skipped); it implements no other HTTP
// filter, so any other is a NACK naming it.
func httpFilters(fs []*hcmv3.HttpFilter) error {
	if len(fs) == 0 {
		return fmt.Errorf("http_filters: the router filter is required")
	}
	for i, f := range fs[:len(fs)-1] {
		if isRouter(f) {
			return fmt.Errorf("http_filters[%d]: the router must be the last filter", i)
		}
		if !skipped(f) {
			return fmt.Errorf("http_filters[%d]: filter %q is not supported (only the router; a filter marked is_optional or disabled is skipped)", i, filterName(f))
		}
	}
	last := len(fs) - 1
	if !isRouter(fs[last]) {
		return fmt.Errorf("http_filters[%d]: the last filter must be the router, got %q", last, filterName(fs[last]))
	}
	return nil
}

// skipped reports whether Envoy's semantics let the sidecar leave f out:
// is_optional ("clients that do not support this filter may ignore it") or
// disabled (off unless a route enables it with typed_per_filter_config,
// which the sidecar NACKs). The router is never skipped.
func skipped(f *hcmv3.HttpFilter) bool {
	return (f.GetIsOptional() || f.GetDisabled()) && !isRouter(f)
}

// isRouter reports whether f is the router filter: by its typed_config's
// type, or by its well-known name when it has none.
func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return tc.MessageIs((*routerv3.Router)(nil))
	}
	return f.GetConfigType() == nil && f.GetName() == routerFilterName
}

// filterName names f in errors: its name, else its typed_config's type.
func filterName(f *hcmv3.HttpFilter) string {
	if f.GetName() != "" {
		return f.GetName()
	}
	return f.GetTypedConfig().GetTypeUrl()
}

func tcpProxy(m *tcpv3.TcpProxy) (*config.TCPProxy, error) {
	if err := validate(m); err != nil {
		return nil, err
	}
	if m.GetCluster() == "" {
		return nil, fmt.Errorf("cluster is required")
	}
	return &config.TCPProxy{
		StatPrefix:  m.GetStatPrefix(),
		Cluster:     m.GetCluster(),
		IdleTimeout: duration(m.GetIdleTimeout(), defaultTCPIdleTimeout),
	}, nil
}
