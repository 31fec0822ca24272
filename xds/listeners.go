package xds

import (
	"fmt"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
)

// publicListener is the sidecar's inbound listener: everything that
// arrives on the sidecar's port goes to the local app, through an
// HttpConnectionManager (inline route configuration) for HTTP protocols or
// tcp_proxy for tcp. requestTimeout bounds requests to the local app (HTTP
// only; nil = Envoy's default, 0 = none).
func publicListener(host string, port int, proto Protocol, requestTimeout *time.Duration) (*listenerv3.Listener, error) {
	var filter *listenerv3.Filter
	var err error
	if proto.IsHTTP() {
		filter, err = hcmFilter(&hcmv3.HttpConnectionManager{
			StatPrefix: PublicListenerName,
			RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
				RouteConfig: localAppRouteConfig(requestTimeout),
			},
		})
	} else {
		filter, err = tcpProxyFilter(PublicListenerName, LocalAppName)
	}
	if err != nil {
		return nil, err
	}
	return listenerWith(PublicListenerName, host, port, filter), nil
}

// upstreamListener is one outbound listener: the app connects to
// LocalBindAddress:LocalBindPort and reaches the upstream's cluster,
// through RDS route configuration id for HTTP protocols or tcp_proxy for
// tcp.
func upstreamListener(id, host string, port int, proto Protocol, cluster string) (*listenerv3.Listener, error) {
	name := UpstreamListenerName(id)
	var filter *listenerv3.Filter
	var err error
	if proto.IsHTTP() {
		filter, err = hcmFilter(rdsConnectionManager("upstream."+id, id))
	} else {
		filter, err = tcpProxyFilter("upstream."+id, cluster)
	}
	if err != nil {
		return nil, err
	}
	return listenerWith(name, host, port, filter), nil
}

// apiListener is what a proxyless gRPC client asks for when it dials
// "xds:///<service>": a listener named <service> without an address whose
// api_listener is an HttpConnectionManager with RDS over ADS and exactly
// the router filter (gRFC A27; grpc-go NACKs a non-terminal last filter).
func apiListener(service string) (*listenerv3.Listener, error) {
	hcm, err := toAny(rdsConnectionManager(service, service))
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", service, err)
	}
	return &listenerv3.Listener{
		Name:        service,
		ApiListener: &listenerv3.ApiListener{ApiListener: hcm},
	}, nil
}

// rdsConnectionManager fetches route configuration routeName over ADS.
func rdsConnectionManager(statPrefix, routeName string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsConfigSource(),
			RouteConfigName: routeName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{routerFilter()},
	}
}

// routerFilter is the terminal HTTP filter; it must come last.
func routerFilter() *hcmv3.HttpFilter {
	// Router{} has no fields that can fail to marshal.
	router, _ := toAny(&routerv3.Router{})
	return &hcmv3.HttpFilter{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
	}
}

// hcmFilter wraps an HttpConnectionManager as a network filter. Filters
// without http_filters get the router.
func hcmFilter(hcm *hcmv3.HttpConnectionManager) (*listenerv3.Filter, error) {
	if len(hcm.HttpFilters) == 0 {
		hcm.HttpFilters = []*hcmv3.HttpFilter{routerFilter()}
	}
	return networkFilter(wellknown.HTTPConnectionManager, hcm)
}

func tcpProxyFilter(statPrefix, cluster string) (*listenerv3.Filter, error) {
	return networkFilter(wellknown.TCPProxy, &tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})
}

func networkFilter(name string, config proto.Message) (*listenerv3.Filter, error) {
	a, err := toAny(config)
	if err != nil {
		return nil, fmt.Errorf("filter %s: %w", name, err)
	}
	return &listenerv3.Filter{Name: name, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}, nil
}

// listenerWith is a TCP listener on host:port with one filter chain.
func listenerWith(name, host string, port int, filter *listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress(host, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{filter}}},
	}
}
