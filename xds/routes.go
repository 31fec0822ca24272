package xds

import (
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// defaultRoute sends every request to cluster. Prefix "/" matches every
// HTTP path and every gRPC method ("/pkg.Service/Method").
func defaultRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		}},
	}
}

// routeConfig is a route configuration with one virtual host (named like
// the configuration) whose default route goes to cluster.
func routeConfig(name string, domains []string, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: domains,
			Routes:  []*routev3.Route{defaultRoute(cluster)},
		}},
	}
}

// routeConfigWith is a route configuration with one virtual host (named
// like the configuration) holding routes.
func routeConfigWith(name string, domains []string, routes []*routev3.Route) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: domains, Routes: routes}},
	}
}

// localAppRouteConfig is the public listener's (inline) route
// configuration: anything that reached this sidecar goes to the local app.
// A nil timeout keeps Envoy's route default (15 s); zero disables it.
func localAppRouteConfig(timeout *time.Duration) *routev3.RouteConfiguration {
	rc := routeConfig(LocalAppName, []string{"*"}, LocalAppName)
	if timeout != nil {
		rc.VirtualHosts[0].Routes[0].GetRoute().Timeout = durationpb.New(*timeout)
	}
	return rc
}

// proxylessRouteConfig is the route configuration of a proxyless gRPC
// client's API listener. grpc-go picks the virtual host by matching the
// channel's authority against domains, and the authority of
// "xds:///<service>" is "<service>" (or "<service>:<port>" when the target
// has a port), so both are listed; a "*" would also match but would hide a
// misdirected client.
func proxylessRouteConfig(service string, routes []*routev3.Route) *routev3.RouteConfiguration {
	return routeConfigWith(service, []string{service, service + ":*"}, routes)
}
