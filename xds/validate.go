package xds

import (
	"errors"
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// maxValidationErrors bounds the errors Validate reports at once: enough to
// see a pattern, not a megabyte of log line for a broken 10,000-service mesh.
const maxValidationErrors = 10

// Validate checks r before it is published: first every resource's own
// rules (protoc-gen-validate ValidateAll), then consistency across types:
//
//   - every RDS name an HttpConnectionManager names exists, including those
//     inside an api_listener (go-control-plane's Snapshot.Consistent does
//     not look there, so it cannot vouch for a proxyless gRPC snapshot);
//   - every cluster a route (RDS or inline) or a tcp_proxy names exists;
//   - every EDS cluster has its ClusterLoadAssignment;
//   - every route configuration and load assignment is referenced (an
//     unreferenced one is a generator bug and would never be requested);
//   - no two listeners bind the same port on overlapping addresses (the
//     same address, or a wildcard 0.0.0.0 / ::), which Envoy or the sidecar
//     would only discover when binding.
//
// The error lists up to ten problems, each naming the resource.
func Validate(r *Resources) error {
	if r == nil {
		return errors.New("validate: nil resources")
	}
	v := &validator{}
	for _, typ := range servedTypes() {
		for _, item := range r.Items(typ) {
			check, ok := item.(interface{ ValidateAll() error })
			if !ok {
				continue
			}
			if err := check.ValidateAll(); err != nil {
				v.addf("%s %q: %w", kindOf(typ), cache.GetResourceName(item), err)
			}
		}
	}
	if len(v.errs) == 0 {
		v.consistent(r, listenerRefs)
	}
	return v.err()
}

type validator struct {
	errs    []error
	dropped int
}

func (v *validator) addf(format string, args ...any) {
	if len(v.errs) == maxValidationErrors {
		v.dropped++
		return
	}
	v.errs = append(v.errs, fmt.Errorf(format, args...))
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	if v.dropped > 0 {
		v.errs = append(v.errs, fmt.Errorf("and %d more", v.dropped))
	}
	return fmt.Errorf("validate: %w", errors.Join(v.errs...))
}

// consistent checks the references between types (see Validate). refsOf
// finds a listener's references (listenerRefs, or what a cache kept of it).
func (v *validator) consistent(r *Resources, refsOf func(*listenerv3.Listener) (references, error)) {
	routes := nameSet(r.Items(resource.RouteType))
	clusters := nameSet(r.Items(resource.ClusterType))
	assignments := nameSet(r.Items(resource.EndpointType))
	usedRoutes := make(map[string]bool, len(routes))
	usedAssignments := make(map[string]bool, len(assignments))

	// kind and name make the owner in messages; formatted only on error.
	clusterRefs := func(kind, owner string, names []string) {
		for _, name := range names {
			if !clusters[name] {
				v.addf("%s %q: cluster %q does not exist", kind, owner, name)
			}
		}
	}

	binds := make(map[uint32][]bind)
	for _, item := range r.Items(resource.ListenerType) {
		l, ok := item.(*listenerv3.Listener)
		if !ok {
			v.addf("listener %q is a %T", cache.GetResourceName(item), item)
			continue
		}
		if sa := l.GetAddress().GetSocketAddress(); sa != nil {
			b := bind{listener: l.GetName(), host: sa.GetAddress()}
			for _, other := range binds[sa.GetPortValue()] {
				if other.overlaps(b) {
					v.addf("listeners %q and %q both bind port %d (%s, %s)",
						other.listener, b.listener, sa.GetPortValue(), other.host, b.host)
				}
			}
			binds[sa.GetPortValue()] = append(binds[sa.GetPortValue()], b)
		}
		refs, err := refsOf(l)
		if err != nil {
			v.addf("listener %q: %w", l.GetName(), err)
			continue
		}
		for _, name := range refs.routes {
			usedRoutes[name] = true
			if !routes[name] {
				v.addf("listener %q: route configuration %q does not exist", l.GetName(), name)
			}
		}
		clusterRefs("listener", l.GetName(), refs.clusters)
	}
	for _, item := range r.Items(resource.RouteType) {
		rc, ok := item.(*routev3.RouteConfiguration)
		if !ok {
			v.addf("route configuration %q is a %T", cache.GetResourceName(item), item)
			continue
		}
		if !usedRoutes[rc.GetName()] {
			v.addf("route configuration %q is not referenced by any listener", rc.GetName())
		}
		clusterRefs("route configuration", rc.GetName(), routeClusters(rc, nil))
	}
	for _, item := range r.Items(resource.ClusterType) {
		c, ok := item.(*clusterv3.Cluster)
		if !ok {
			v.addf("cluster %q is a %T", cache.GetResourceName(item), item)
			continue
		}
		if c.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		usedAssignments[name] = true
		if !assignments[name] {
			v.addf("cluster %q: load assignment %q does not exist", c.GetName(), name)
		}
	}
	for _, name := range r.Names(resource.EndpointType) {
		if !usedAssignments[name] {
			v.addf("load assignment %q is not referenced by any EDS cluster", name)
		}
	}
}

// bind is where a listener listens, to find two that cannot both bind.
type bind struct {
	listener string
	host     string
}

// overlaps: the same address, or either is a wildcard (0.0.0.0 or ::)
// which takes the port on every address.
func (b bind) overlaps(o bind) bool {
	wildcard := func(h string) bool { return h == "0.0.0.0" || h == "::" || h == "" }
	return b.host == o.host || wildcard(b.host) || wildcard(o.host)
}

// references are the names a listener depends on.
type references struct {
	routes   []string // RDS route configuration names
	clusters []string // clusters named by inline routes and tcp_proxy
}

// listenerRefs finds the references of every filter chain (the default
// one included) and of the api_listener.
func listenerRefs(l *listenerv3.Listener) (references, error) {
	var refs references
	chains := l.GetFilterChains()
	if dc := l.GetDefaultFilterChain(); dc != nil {
		chains = append(chains[:len(chains):len(chains)], dc)
	}
	for _, chain := range chains {
		for _, f := range chain.GetFilters() {
			if err := refs.addFilter(f.GetTypedConfig()); err != nil {
				return refs, fmt.Errorf("filter %s: %w", f.GetName(), err)
			}
		}
	}
	if api := l.GetApiListener().GetApiListener(); api != nil {
		if !api.MessageIs(&hcmv3.HttpConnectionManager{}) {
			return refs, fmt.Errorf("api_listener is %s, not an HttpConnectionManager", api.GetTypeUrl())
		}
		if err := refs.addFilter(api); err != nil {
			return refs, fmt.Errorf("api_listener: %w", err)
		}
	}
	return refs, nil
}

// addFilter records what one network filter refers to. Filters other than
// the HttpConnectionManager and tcp_proxy refer to nothing we serve.
func (refs *references) addFilter(config *anypb.Any) error {
	switch {
	case config == nil:
		return nil
	case config.MessageIs(&hcmv3.HttpConnectionManager{}):
		hcm := &hcmv3.HttpConnectionManager{}
		if err := config.UnmarshalTo(hcm); err != nil {
			return err
		}
		if rds := hcm.GetRds(); rds != nil {
			refs.routes = append(refs.routes, rds.GetRouteConfigName())
		}
		if rc := hcm.GetRouteConfig(); rc != nil {
			refs.clusters = routeClusters(rc, refs.clusters)
		}
	case config.MessageIs(&tcpproxyv3.TcpProxy{}):
		tcp := &tcpproxyv3.TcpProxy{}
		if err := config.UnmarshalTo(tcp); err != nil {
			return err
		}
		if c := tcp.GetCluster(); c != "" {
			refs.clusters = append(refs.clusters, c)
		}
		for _, wc := range tcp.GetWeightedClusters().GetClusters() {
			refs.clusters = append(refs.clusters, wc.GetName())
		}
	}
	return nil
}

// routeClusters appends the clusters rc's routes forward to.
func routeClusters(rc *routev3.RouteConfiguration, out []string) []string {
	for _, vh := range rc.GetVirtualHosts() {
		for _, route := range vh.GetRoutes() {
			action := route.GetRoute()
			if c := action.GetCluster(); c != "" {
				out = append(out, c)
			}
			for _, wc := range action.GetWeightedClusters().GetClusters() {
				out = append(out, wc.GetName())
			}
		}
	}
	return out
}

func nameSet(items []types.Resource) map[string]bool {
	set := make(map[string]bool, len(items))
	for _, item := range items {
		set[cache.GetResourceName(item)] = true
	}
	return set
}

// kindOf names one resource of a type in error messages.
func kindOf(typeURL resource.Type) string {
	switch typeURL {
	case resource.ListenerType:
		return "listener"
	case resource.RouteType:
		return "route configuration"
	case resource.ClusterType:
		return "cluster"
	case resource.EndpointType:
		return "load assignment"
	}
	return typeURL
}
