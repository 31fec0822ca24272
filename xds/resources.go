package xds

import (
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// servedTypes are the resource types a Resources holds, in the order Envoy
// wants them applied (CDS before EDS, LDS before RDS). An array value, so
// that no caller can change the package's idea of it.
func servedTypes() [4]resource.Type {
	return [...]resource.Type{
		resource.ClusterType,
		resource.EndpointType,
		resource.ListenerType,
		resource.RouteType,
	}
}

// TypeURLs returns the type URLs every Resources carries (possibly empty).
func TypeURLs() []resource.Type {
	t := servedTypes()
	return t[:]
}

// Resources is one consumer's complete set of xDS resources: per type URL,
// the resources sorted by name and a version derived from their content.
//
// A Resources is immutable once built: callers must not modify the returned
// slices or the protos in them (they may be shared with a published
// go-control-plane snapshot).
type Resources struct {
	groups map[resource.Type]group
	// warnings are set by ForProxyless; see Warnings.
	warnings []Warning
}

type group struct {
	version string
	items   []types.Resource // sorted by name, names unique
	names   []string         // names[i] is items[i]'s name
	// versions[i] is items[i]'s content version (what delta xDS compares).
	versions []string
}

// NewResources groups items by type URL, sorts each group by name and
// derives each group's version from its content. It fails on an item of a
// type this package does not serve, on an unnamed item, and on two items of
// one type with the same name (an xDS client would silently keep one).
//
// NewResources does not validate; see Validate.
func NewResources(items ...types.Resource) (*Resources, error) {
	byType := make(map[resource.Type][]types.Resource, len(servedTypes()))
	for _, item := range items {
		typ, err := typeURLOf(item)
		if err != nil {
			return nil, err
		}
		byType[typ] = append(byType[typ], item)
	}
	r := &Resources{groups: make(map[resource.Type]group, len(servedTypes()))}
	for _, typ := range servedTypes() {
		list := byType[typ]
		slices.SortFunc(list, func(a, b types.Resource) int {
			return strings.Compare(cache.GetResourceName(a), cache.GetResourceName(b))
		})
		names := make([]string, len(list))
		for i, item := range list {
			names[i] = cache.GetResourceName(item)
			if names[i] == "" {
				return nil, fmt.Errorf("%s: resource without a name", shortType(typ))
			}
			if i > 0 && names[i-1] == names[i] {
				return nil, fmt.Errorf("%s: duplicate name %q", shortType(typ), names[i])
			}
		}
		version, versions, err := contentVersions(names, list)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", shortType(typ), err)
		}
		r.groups[typ] = group{version: version, items: list, names: names, versions: versions}
	}
	return r, nil
}

// versionedItem is a resource with its content version already known
// (itemVersion) and its type URL.
type versionedItem struct {
	typ     resource.Type
	name    string
	item    types.Resource
	version string
}

// newVersionedResources is NewResources for items whose content versions
// are known: it groups and sorts them and derives each type's version as
// NewResources would (equal content, equal versions, whichever way a
// Resources was made), without marshalling anything. items is reordered.
func newVersionedResources(items []versionedItem) (*Resources, error) {
	slices.SortFunc(items, func(a, b versionedItem) int {
		if c := strings.Compare(a.typ, b.typ); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	r := &Resources{groups: make(map[resource.Type]group, len(servedTypes()))}
	for _, typ := range servedTypes() {
		lo, _ := slices.BinarySearchFunc(items, typ, func(v versionedItem, t resource.Type) int { return strings.Compare(v.typ, t) })
		hi := lo
		for hi < len(items) && items[hi].typ == typ {
			hi++
		}
		n := hi - lo
		g := group{items: make([]types.Resource, n), names: make([]string, n), versions: make([]string, n)}
		for i, v := range items[lo:hi] {
			if v.name == "" {
				return nil, fmt.Errorf("%s: resource without a name", shortType(typ))
			}
			if i > 0 && g.names[i-1] == v.name {
				return nil, fmt.Errorf("%s: duplicate name %q", shortType(typ), v.name)
			}
			g.items[i], g.names[i], g.versions[i] = v.item, v.name, v.version
		}
		g.version = typeVersion(g.names, g.versions)
		r.groups[typ] = g
	}
	return r, nil
}

func typeURLOf(item types.Resource) (resource.Type, error) {
	switch item.(type) {
	case *clusterv3.Cluster:
		return resource.ClusterType, nil
	case *endpointv3.ClusterLoadAssignment:
		return resource.EndpointType, nil
	case *listenerv3.Listener:
		return resource.ListenerType, nil
	case *routev3.RouteConfiguration:
		return resource.RouteType, nil
	case nil:
		return "", fmt.Errorf("nil resource")
	}
	return "", fmt.Errorf("unsupported resource type %s", resource.APITypePrefix+item.ProtoReflect().Descriptor().FullName())
}

// Version returns the content version of one type ("" for an unknown type).
func (r *Resources) Version(typeURL resource.Type) string {
	return r.groups[typeURL].version
}

// Items returns the resources of one type, sorted by name. The slice is
// shared: do not modify it.
func (r *Resources) Items(typeURL resource.Type) []types.Resource {
	return r.groups[typeURL].items
}

// Names returns the names of the resources of one type, sorted.
func (r *Resources) Names(typeURL resource.Type) []string {
	return slices.Clone(r.groups[typeURL].names)
}

// ResourceVersions returns each resource's content version by name, for
// one type.
func (r *Resources) ResourceVersions(typeURL resource.Type) map[string]string {
	g := r.groups[typeURL]
	out := make(map[string]string, len(g.names))
	for i, name := range g.names {
		out[name] = g.versions[i]
	}
	return out
}

// Versions returns a copy of the version of every type.
func (r *Resources) Versions() map[resource.Type]string {
	out := make(map[resource.Type]string, len(r.groups))
	for typ, g := range r.groups {
		out[typ] = g.version
	}
	return out
}

// Snapshot returns a go-control-plane snapshot holding these resources,
// each type with its own version (cache.NewSnapshot would stamp one version
// on every type, so that a change in one endpoint would re-send listeners).
// Every served type is present, empty ones included, so that a wildcard
// request for a type this consumer has nothing of still gets an answer.
//
// The snapshot's VersionMap (per-resource versions for delta xDS) is
// filled from the content versions computed when r was built, so
// go-control-plane's ConstructVersionMap has nothing left to marshal.
func (r *Resources) Snapshot() (*cache.Snapshot, error) {
	snap := &cache.Snapshot{VersionMap: make(map[string]map[string]string, types.UnknownType)}
	for idx := range types.UnknownType {
		typ, err := cache.GetResponseTypeURL(idx)
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		// Types we do not serve get an empty map, as ConstructVersionMap
		// would give them.
		snap.VersionMap[typ] = r.ResourceVersions(typ)
	}
	for _, typ := range servedTypes() {
		idx := cache.GetResponseType(typ)
		if idx == types.UnknownType {
			return nil, fmt.Errorf("snapshot: unknown type %s", typ)
		}
		g := r.groups[typ]
		snap.Resources[idx] = cache.NewResources(g.version, g.items)
	}
	return snap, nil
}

// shortType turns a type URL into a word for error messages.
func shortType(typeURL resource.Type) string {
	switch typeURL {
	case resource.ListenerType:
		return "listeners"
	case resource.RouteType:
		return "routes"
	case resource.ClusterType:
		return "clusters"
	case resource.EndpointType:
		return "endpoints"
	}
	return typeURL
}
