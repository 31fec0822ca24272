package xdsclient

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/decode"
)

// Type URLs of the four resource kinds the sidecar consumes.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// typeOrder is the order types are subscribed in, as Envoy does (CDS before
// EDS, LDS before RDS).
var typeOrder = []string{ClusterType, EndpointType, ListenerType, RouteType}

// shortType names a type URL in logs and metric labels.
func shortType(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "listener"
	case RouteType:
		return "route"
	case ClusterType:
		return "cluster"
	case EndpointType:
		return "endpoint"
	}
	return typeURL
}

// resource is one decoded xDS resource; exactly one decoded field is set,
// matching its type.
type resource struct {
	name    string
	version string
	// raw is the resource as received (the Any's value): kept for
	// /config_dump and change detection instead of the decoded proto
	// tree, several times its size (with 10,000 clusters, most of the
	// sidecar's heap).
	raw []byte

	listener  *config.Listener
	route     *config.RouteConfig
	cluster   *config.Cluster
	endpoints []config.Endpoint

	// fetchTimeout is the initial_fetch_timeout of the config source this
	// resource names: RDS for a listener, EDS for a cluster.
	fetchTimeout time.Duration
}

// ref names a resource a config depends on. An empty name stands for "the
// wildcard type has not been answered yet".
type ref struct {
	typeURL string
	name    string
}

func (r ref) String() string {
	if r.name == "" {
		return shortType(r.typeURL) + "s (no response yet)"
	}
	return fmt.Sprintf("%s %q", shortType(r.typeURL), r.name)
}

// decodeResource unpacks and decodes one resource of typeURL. name, when
// not empty, is the name the server gave (Delta) and must match.
func decodeResource(typeURL, name string, a *anypb.Any) (*resource, error) {
	if a.GetTypeUrl() != typeURL {
		return nil, fmt.Errorf("%s resource %q: type %q does not match the response type", shortType(typeURL), name, a.GetTypeUrl())
	}
	r := &resource{}
	var err error
	switch typeURL {
	case ListenerType:
		m := &listenerv3.Listener{}
		if err = a.UnmarshalTo(m); err == nil {
			r.name = m.GetName()
			if r.listener, err = decode.Listener(m); err == nil {
				r.fetchTimeout = decode.InitialFetchTimeout(decode.RDSConfigSource(m))
			}
		}
	case RouteType:
		m := &routev3.RouteConfiguration{}
		if err = a.UnmarshalTo(m); err == nil {
			r.name = m.GetName()
			r.route, err = decode.RouteConfiguration(m)
		}
	case ClusterType:
		m := &clusterv3.Cluster{}
		if err = a.UnmarshalTo(m); err == nil {
			r.name = m.GetName()
			if r.cluster, err = decode.Cluster(m); err == nil {
				r.fetchTimeout = decode.InitialFetchTimeout(m.GetEdsClusterConfig().GetEdsConfig())
			}
		}
	case EndpointType:
		m := &endpointv3.ClusterLoadAssignment{}
		if err = a.UnmarshalTo(m); err == nil {
			r.name = m.GetClusterName()
			r.endpoints, err = decode.ClusterLoadAssignment(m)
		}
	default:
		return nil, fmt.Errorf("type %q is not supported", typeURL)
	}
	if err != nil {
		return nil, err
	}
	r.raw = a.GetValue()
	if name != "" && name != r.name {
		return nil, fmt.Errorf("%s resource %q: the resource is named %q", shortType(typeURL), name, r.name)
	}
	return r, nil
}

// store is the client's view of the resources on the current stream.
// It is replaced (copy on write per type), never mutated in place, so a
// rejected update can be dropped by keeping the old store.
type store struct {
	byType   map[string]map[string]*resource
	versions map[string]string // type URL → version_info / system_version_info

	// timeouts caches fetchTimeout per referencing type (listeners for
	// route configurations, clusters for load assignments): referenced
	// name → shortest initial_fetch_timeout. Filled on first use from
	// Run's goroutine; with drops the entry of the type it replaces.
	timeouts map[string]map[string]time.Duration
}

func newStore() *store {
	s := &store{byType: make(map[string]map[string]*resource), versions: make(map[string]string)}
	for _, t := range typeOrder {
		s.byType[t] = make(map[string]*resource)
	}
	return s
}

// with returns a copy of s in which typeURL's resources are res and its
// version is version.
func (s *store) with(typeURL string, res map[string]*resource, version string) *store {
	n := &store{byType: maps.Clone(s.byType), versions: maps.Clone(s.versions), timeouts: maps.Clone(s.timeouts)}
	delete(n.timeouts, typeURL)
	n.byType[typeURL] = res
	n.versions[typeURL] = version
	return n
}

// wanted returns the route configuration names the listeners use and the
// load assignment names the EDS clusters use, sorted.
func (s *store) wanted() (routes, endpoints []string) {
	rs, es := s.wantedSets()
	return sortedKeys(rs), sortedKeys(es)
}

// wantedSets is wanted as sets.
func (s *store) wantedSets() (routes, endpoints map[string]struct{}) {
	rs, es := map[string]struct{}{}, map[string]struct{}{}
	for _, r := range s.byType[ListenerType] {
		if h := r.listener.HTTP; h != nil && h.RouteConfigName != "" {
			rs[h.RouteConfigName] = struct{}{}
		}
	}
	for _, r := range s.byType[ClusterType] {
		if n := r.cluster.EDSServiceName; n != "" {
			es[n] = struct{}{}
		}
	}
	return rs, es
}

// prune drops route configurations and load assignments nobody references
// any more (an unsubscribed resource is forgotten, as in Envoy).
func (s *store) prune() *store {
	routes, eps := s.wantedSets()
	n := s
	for typeURL, keep := range map[string]map[string]struct{}{RouteType: routes, EndpointType: eps} {
		cur := n.byType[typeURL]
		if len(cur) == 0 {
			continue
		}
		var dropped bool
		next := make(map[string]*resource, len(keep))
		for name, r := range cur {
			if _, ok := keep[name]; ok {
				next[name] = r
			} else {
				dropped = true
			}
		}
		if dropped {
			n = n.with(typeURL, next, n.versions[typeURL])
		}
	}
	return n
}

// build returns the complete config, or nil and what is still missing
// when some referenced resource has not arrived (Envoy's warming). LDS and
// CDS must each have been answered once. A ref in giveUp has outlived its
// initial fetch timeout: as in Envoy, the config proceeds without it (an
// empty route configuration, a cluster without endpoints, a route to a
// cluster that does not exist, which the data path answers 503 NC).
func (s *store) build(giveUp map[ref]bool) (*config.Config, []ref) {
	var missing []ref
	for _, t := range []string{ListenerType, ClusterType} {
		if _, ok := s.versions[t]; !ok {
			missing = append(missing, ref{typeURL: t})
		}
	}
	cfg := &config.Config{
		Versions:  maps.Clone(s.versions),
		Listeners: make(map[string]*config.Listener, len(s.byType[ListenerType])),
		Routes:    make(map[string]*config.RouteConfig, len(s.byType[RouteType])),
		Clusters:  make(map[string]*config.Cluster, len(s.byType[ClusterType])),
	}
	for name, r := range s.byType[ClusterType] {
		c := r.cluster
		if c.EDSServiceName != "" {
			withEndpoints := *c
			if eps, ok := s.byType[EndpointType][c.EDSServiceName]; ok {
				withEndpoints.Endpoints = eps.endpoints
			} else if need := (ref{EndpointType, c.EDSServiceName}); !giveUp[need] {
				missing = append(missing, need)
				continue
			}
			c = &withEndpoints
		}
		cfg.Clusters[name] = c
	}
	needCluster := func(name string) {
		if _, ok := s.byType[ClusterType][name]; !ok {
			if need := (ref{ClusterType, name}); !giveUp[need] {
				missing = append(missing, need)
			}
		}
	}
	needClusters := func(rc *config.RouteConfig) {
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				if f := rt.Forward; f != nil {
					if f.Cluster != "" {
						needCluster(f.Cluster)
					}
					for _, wc := range f.WeightedClusters {
						needCluster(wc.Name)
					}
				}
			}
		}
	}
	for name, r := range s.byType[ListenerType] {
		l := r.listener
		cfg.Listeners[name] = l
		switch {
		case l.TCP != nil:
			needCluster(l.TCP.Cluster)
		case l.HTTP.Inline != nil:
			needClusters(l.HTTP.Inline)
		default:
			rname := l.HTTP.RouteConfigName
			rr, ok := s.byType[RouteType][rname]
			switch {
			case ok:
				cfg.Routes[rname] = rr.route
				needClusters(rr.route)
			case giveUp[ref{RouteType, rname}]:
				cfg.Routes[rname] = &config.RouteConfig{Name: rname}
			default:
				missing = append(missing, ref{RouteType, rname})
			}
		}
	}
	if len(missing) > 0 {
		return nil, sortRefs(missing)
	}
	return cfg, nil
}

// sortRefs sorts refs by their String form and drops duplicates. Each
// String is formatted once: formatting inside the comparison dominated
// the warming of a large config. Distinct refs have distinct Strings, so
// the result does not depend on the sort's stability.
func sortRefs(refs []ref) []ref {
	type keyed struct {
		key string
		r   ref
	}
	ks := make([]keyed, len(refs))
	for i, r := range refs {
		ks[i] = keyed{r.String(), r}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	out := refs[:0]
	for i, k := range ks {
		if i > 0 && k.r == ks[i-1].r {
			continue
		}
		out = append(out, k.r)
	}
	return out
}

// fetchTimeout is how long warming waits for r: the shortest
// initial_fetch_timeout among the resources naming it; 0 waits forever.
// Clusters named by routes come from the wildcard CDS subscription and
// wait Envoy's default.
func (s *store) fetchTimeout(r ref) time.Duration {
	var from string
	switch r.typeURL {
	case RouteType:
		from = ListenerType
	case EndpointType:
		from = ClusterType
	case ClusterType:
		return decode.DefaultInitialFetchTimeout
	default:
		return 0
	}
	idx, ok := s.timeouts[from]
	if !ok {
		idx = s.indexTimeouts(from)
		if s.timeouts == nil {
			s.timeouts = make(map[string]map[string]time.Duration, 2)
		}
		s.timeouts[from] = idx
	}
	return idx[r.name]
}

// indexTimeouts maps every name the resources of type from reference
// (listeners: their RDS route configuration; clusters: their EDS service
// name) to the shortest positive initial_fetch_timeout among them, or 0
// when none is positive (wait forever).
func (s *store) indexTimeouts(from string) map[string]time.Duration {
	res := s.byType[from]
	idx := make(map[string]time.Duration, len(res))
	for _, x := range res {
		var name string
		switch from {
		case ListenerType:
			if h := x.listener.HTTP; h != nil {
				name = h.RouteConfigName
			}
		case ClusterType:
			name = x.cluster.EDSServiceName
		}
		// The listener scan matched a route name against every HTTP
		// listener's RouteConfigName (empty for inline routes), and the
		// cluster scan every cluster's EDSServiceName: keep empty names
		// indexed too so the lookups answer exactly as the scans did.
		d, seen := idx[name]
		if !seen || (x.fetchTimeout > 0 && (d <= 0 || x.fetchTimeout < d)) {
			idx[name] = x.fetchTimeout
		}
	}
	for name, d := range idx {
		if d < 0 {
			idx[name] = 0
		}
	}
	return idx
}

// has reports whether r is in the store.
func (s *store) has(r ref) bool {
	_, ok := s.byType[r.typeURL][r.name]
	return ok
}

// dump returns the raw resources by type URL, sorted by name; each is
// decoded when read (see rawMessage).
func (s *store) dump() map[string][]proto.Message {
	out := make(map[string][]proto.Message, len(s.byType))
	for t, res := range s.byType {
		names := sortedKeys(res)
		msgs := make([]proto.Message, 0, len(names))
		for _, n := range names {
			msgs = append(msgs, rawMessage{typeURL: t, raw: res[n].raw})
		}
		out[t] = msgs
	}
	return out
}

// rawMessage is a resource kept as received. It is a proto.Message whose
// ProtoReflect decodes a fresh copy on every call: for reading
// (/config_dump's protojson), not for changing.
type rawMessage struct {
	typeURL string
	raw     []byte
}

func (m rawMessage) ProtoReflect() protoreflect.Message {
	msg := newMessage(m.typeURL)
	if msg == nil {
		return (&anypb.Any{TypeUrl: m.typeURL, Value: m.raw}).ProtoReflect()
	}
	if err := proto.Unmarshal(m.raw, msg); err != nil {
		// It was decoded once when received; say so rather than panic.
		return (&anypb.Any{TypeUrl: m.typeURL, Value: m.raw}).ProtoReflect()
	}
	return msg.ProtoReflect()
}

// newMessage returns an empty message of a supported type URL, else nil.
func newMessage(typeURL string) proto.Message {
	switch typeURL {
	case ListenerType:
		return &listenerv3.Listener{}
	case RouteType:
		return &routev3.RouteConfiguration{}
	case ClusterType:
		return &clusterv3.Cluster{}
	case EndpointType:
		return &endpointv3.ClusterLoadAssignment{}
	}
	return nil
}

// sameRaw reports whether two received resources of typeURL are equal:
// the same bytes, or (when a control plane encodes a resource differently)
// the same message.
func sameRaw(typeURL string, a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	ma, mb := newMessage(typeURL), newMessage(typeURL)
	if ma == nil || proto.Unmarshal(a, ma) != nil || proto.Unmarshal(b, mb) != nil {
		return false
	}
	return proto.Equal(ma, mb)
}

// resourceVersions returns name → version for one type.
func (s *store) resourceVersions(typeURL string) map[string]string {
	out := make(map[string]string, len(s.byType[typeURL]))
	for n, r := range s.byType[typeURL] {
		out[n] = r.version
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
