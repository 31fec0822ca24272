package xds

import (
	"strings"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// Fixed resource names of a sidecar.
const (
	// PublicListenerName is the sidecar's inbound listener.
	PublicListenerName = "public_listener"
	// LocalAppName names the cluster (and inline route configuration) that
	// reaches the application next to the sidecar.
	LocalAppName = "local_app"
	// upstreamListenerPrefix precedes the upstream ID in an outbound
	// listener's name.
	upstreamListenerPrefix = "upstream:"
	// namespace is Consul's default namespace; Consul CE has no other.
	namespace = "default"
)

// Target is where traffic for one upstream ends up: a service, optionally
// a subset of it (service-resolver subsets), in a datacenter. Every target
// is one EDS cluster and one ClusterLoadAssignment.
type Target struct {
	Service    string
	Subset     string // "" for the whole service
	Datacenter string
}

// ClusterName names the target's cluster in Consul's style (the SNI name of
// Consul's connect clusters without the trust domain):
//
//	<service>.default.<dc>.internal
//	<subset>.<service>.default.<dc>.internal
//
// Consul requires subset names to be DNS labels, so the first label of a
// name with a subset is always the subset and names never collide.
func (t Target) ClusterName() string {
	var b strings.Builder
	b.Grow(len(t.Subset) + len(t.Service) + len(t.Datacenter) + len(namespace) + 12)
	if t.Subset != "" {
		b.WriteString(t.Subset)
		b.WriteByte('.')
	}
	b.WriteString(t.Service)
	b.WriteByte('.')
	b.WriteString(namespace)
	b.WriteByte('.')
	b.WriteString(t.Datacenter)
	b.WriteString(".internal")
	return b.String()
}

// upstreamID is the name an upstream's listener and route configuration
// carry: the destination service, with "?dc=<dc>" when the upstream names
// another datacenter (Consul's UpstreamID spelling), so that the same
// service in two datacenters gives two names.
func upstreamID(u mesh.Upstream, localDC string) string {
	if u.Datacenter != "" && u.Datacenter != localDC {
		return u.DestinationName + "?dc=" + u.Datacenter
	}
	return u.DestinationName
}

// UpstreamListenerName is the outbound listener name of the upstream with
// the given ID ("upstream:<id>").
func UpstreamListenerName(id string) string { return upstreamListenerPrefix + id }
