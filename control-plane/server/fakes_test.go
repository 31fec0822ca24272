package server

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/control-plane/metrics"
	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/xds"
)

// fakeSource is a Source whose snapshots the test sets.
type fakeSource struct {
	mu   sync.Mutex
	cur  *mesh.Snapshot
	subs map[chan struct{}]struct{}
}

func newFakeSource(s *mesh.Snapshot) *fakeSource {
	return &fakeSource{cur: s, subs: map[chan struct{}]struct{}{}}
}

func (f *fakeSource) Current() *mesh.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

func (f *fakeSource) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

func (f *fakeSource) Set(s *mesh.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cur = s
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// fakeTranslator makes one cluster and one load assignment per upstream of a
// sidecar (per service for proxyless clients), versioned by content.
type fakeTranslator struct{}

func (fakeTranslator) Sidecar(snap *mesh.Snapshot, id string) (*cache.Snapshot, error) {
	p := snap.Proxy(id)
	if p == nil {
		return nil, fmt.Errorf("no proxy %q", id)
	}
	var names []string
	for _, u := range p.Upstreams {
		names = append(names, u.DestinationName)
	}
	return fakeSnapshot(snap, names)
}

func (fakeTranslator) Proxyless(snap *mesh.Snapshot) (*cache.Snapshot, []xds.Warning, error) {
	var names []string
	for n, s := range snap.Services {
		if s.Kind == mesh.KindTypical {
			names = append(names, n)
		}
	}
	cs, err := fakeSnapshot(snap, names)
	return cs, nil, err
}

func fakeSnapshot(snap *mesh.Snapshot, services []string) (*cache.Snapshot, error) {
	sort.Strings(services)
	var clusters, endpoints []types.Resource
	var eps []string
	for _, name := range services {
		clusters = append(clusters, &clusterv3.Cluster{Name: name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
		cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
		var lbs []*endpointv3.LbEndpoint
		for _, in := range serviceInstances(snap.Service(name)) {
			if in.Health != mesh.HealthPassing {
				continue
			}
			lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
					Address: in.Address, PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(in.Port)}}}}}}})
			eps = append(eps, fmt.Sprintf("%s:%d", in.Address, in.Port))
		}
		cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
		endpoints = append(endpoints, cla)
	}
	s := &cache.Snapshot{}
	s.Resources[types.Cluster] = cache.NewResources("c:"+strings.Join(services, ","), clusters)
	s.Resources[types.Endpoint] = cache.NewResources("e:"+strings.Join(eps, ","), endpoints)
	return s, nil
}

// GetInstances lets the fake read a possibly nil service.
func serviceInstances(s *mesh.Service) []mesh.Instance {
	if s == nil {
		return nil
	}
	return s.Instances
}

// model builds a snapshot: one sidecar per proxy ID with the given
// upstreams, and services with passing instances on the given ports.
func model(index uint64, proxies map[string][]string, services map[string][]int) *mesh.Snapshot {
	s := &mesh.Snapshot{Index: index, Datacenter: "dc1", Services: map[string]*mesh.Service{}, Proxies: map[string]*mesh.Proxy{}}
	for name, ports := range services {
		svc := &mesh.Service{Name: name}
		for i, p := range ports {
			svc.Instances = append(svc.Instances, mesh.Instance{ID: fmt.Sprintf("%s-%d", name, i), Service: name,
				Node: "n1", Address: "127.0.0.1", Port: p, Health: mesh.HealthPassing})
		}
		s.Services[name] = svc
	}
	for id, ups := range proxies {
		p := &mesh.Proxy{ID: id, Name: "web-sidecar-proxy", DestinationService: "web", Port: 21000}
		for i, u := range ups {
			p.Upstreams = append(p.Upstreams, mesh.Upstream{DestinationName: u, LocalBindPort: 9000 + i})
		}
		s.Proxies[id] = p
	}
	return s
}

type testServer struct {
	*Server
	addr    string
	logs    *observer.ObservedLogs
	src     *fakeSource
	metrics *metrics.Metrics
}

// startServer runs a Server on a loopback port until the test ends.
func startServer(t *testing.T, src *fakeSource, opts Options) *testServer {
	t.Helper()
	return startServerWith(t, src, fakeTranslator{}, opts)
}

// startServerWith is startServer with another translator.
func startServerWith(t *testing.T, src *fakeSource, tr Translator, opts Options) *testServer {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	m := metrics.New(prometheus.NewRegistry())
	if opts.Debounce == 0 {
		opts.Debounce = 10 * time.Millisecond
	}
	srv := New(log, src, tr, m, opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testServer{Server: srv, addr: lis.Addr().String(), logs: logs, src: src, metrics: m}
}

func sidecarNode(id string) *core.Node {
	return &core.Node{Id: id, UserAgentName: "consulate-test"}
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
