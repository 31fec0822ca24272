package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/seed-a778acb4/consulate/bench/peers"
	"github.com/seed-a778acb4/consulate/bench/xdsstatic"
	"github.com/seed-a778acb4/consulate/sidecar/decode/decodetest"
)

// target is one thing the load is sent to.
type target struct {
	name  string
	grpc  bool
	url   string   // HTTP targets
	addr  string   // gRPC targets
	procs []*child // the proxy processes measured; none for direct
}

// env is everything started for a run.
type env struct {
	s        settings
	dir      string
	upstream *child
	upHTTP   string
	upGRPC   string
	xdsAddr  string
	children []*child
	targets  map[string]*target
}

func (e *env) stopAll() {
	for _, c := range slices.Backward(e.children) {
		c.stop()
	}
}

func port() string {
	p, err := freePort()
	if err != nil {
		panic(err)
	}
	return strconv.Itoa(p)
}

func hostPort(addr string) decodetest.HostPort {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return decodetest.HostPort{Host: h, Port: uint32(n)}
}

func pnum(addr string) uint32 { return hostPort(addr).Port }

// setUp starts the upstream, the xDS server (until ctx is done), the
// sidecars and the peers that the targets need, and waits until each
// target answers.
func setUp(ctx context.Context, s settings, dir string) (*env, error) {
	e := &env{s: s, dir: dir, targets: map[string]*target{}}
	want := func(n string) bool { return slices.Contains(s.Targets, n) }
	lo := "127.0.0.1:"
	e.upHTTP, e.upGRPC = lo+port(), lo+port()
	up, err := start("upstream", s.GenCPU, []string{"GOMAXPROCS=1"}, filepath.Join(dir, "upstream.log"),
		s.UpstreamBin, "-addr", e.upHTTP, "-grpc-addr", e.upGRPC)
	if err != nil {
		return e, err
	}
	e.upstream = up
	e.children = append(e.children, up)
	if err := waitHTTP(ctx, up, "http://"+e.upHTTP+"/", "", 10*time.Second); err != nil {
		return e, err
	}
	if want("direct") {
		e.targets["direct"] = &target{name: "direct", url: "http://" + e.upHTTP + "/"}
	}
	if want("grpc-direct") {
		e.targets["grpc-direct"] = &target{name: "grpc-direct", grpc: true, addr: e.upGRPC}
	}

	// Sidecars: node → snapshot, then the processes.
	snaps := map[string]*cachev3.Snapshot{}
	upEP := []decodetest.HostPort{hostPort(e.upHTTP)}
	one, quiet, cli, srv, grpcL, base := lo+port(), lo+port(), lo+port(), lo+port(), lo+port(), lo+port()
	add := func(node string, fw ...xdsstatic.Forward) error {
		snap, err := xdsstatic.Snapshot("1", fw...)
		snaps[node] = snap
		return err
	}
	if err := add("bench-1hop",
		xdsstatic.Forward{Name: "app", Port: pnum(one), Endpoints: upEP},
		xdsstatic.Forward{Name: "grpc", Port: pnum(grpcL), HTTP2: true, Endpoints: []decodetest.HostPort{hostPort(e.upGRPC)}}); err != nil {
		return e, err
	}
	if err := add("bench-baseline", xdsstatic.Forward{Name: "app", Port: pnum(base), Endpoints: upEP}); err != nil {
		return e, err
	}
	if err := add("bench-quiet", xdsstatic.Forward{Name: "app", Port: pnum(quiet), Endpoints: upEP}); err != nil {
		return e, err
	}
	if err := add("bench-client", xdsstatic.Forward{Name: "server", Port: pnum(cli), Endpoints: []decodetest.HostPort{hostPort(srv)}}); err != nil {
		return e, err
	}
	if err := add("bench-server", xdsstatic.Forward{Name: "local_app", Port: pnum(srv), Endpoints: upEP}); err != nil {
		return e, err
	}
	manyAddr := lo + port()
	if s.Many > 0 {
		snap, err := xdsstatic.Many("1", pnum(manyAddr), s.Many, hostPort(e.upHTTP))
		if err != nil {
			return e, err
		}
		snaps["bench-many"] = snap
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return e, err
	}
	e.xdsAddr = xl.Addr().String()
	go func() {
		if err := xdsstatic.Serve(ctx, xl, snaps); err != nil {
			fmt.Fprintln(os.Stderr, "proxybench: xds server:", err)
		}
	}()

	sidecarBin := func(bin, node, level string) (*child, error) {
		log := ""
		if s.SidecarLogs {
			log = filepath.Join(dir, node+".log")
		}
		c, err := start(node, s.ProxyCPU, []string{"GOMAXPROCS=1"}, log, bin,
			"-proxy-id", node, "-control-plane", e.xdsAddr, "-admin-addr", lo+port(), "-log-level", level)
		if err == nil {
			e.children = append(e.children, c)
		}
		return c, err
	}
	sidecar := func(node, level string) (*child, error) { return sidecarBin(s.SidecarBin, node, level) }
	if want("sidecar-baseline") {
		if s.BaselineBin == "" {
			return e, fmt.Errorf("target sidecar-baseline needs -baseline")
		}
		c, err := sidecarBin(s.BaselineBin, "bench-baseline", "info")
		if err != nil {
			return e, err
		}
		e.targets["sidecar-baseline"] = &target{name: "sidecar-baseline", url: "http://" + base + "/", procs: []*child{c}}
	}
	if want("sidecar") || want("grpc-sidecar") {
		c, err := sidecar("bench-1hop", "info")
		if err != nil {
			return e, err
		}
		e.targets["sidecar"] = &target{name: "sidecar", url: "http://" + one + "/", procs: []*child{c}}
		e.targets["grpc-sidecar"] = &target{name: "grpc-sidecar", grpc: true, addr: grpcL, procs: []*child{c}}
	}
	if want("sidecar-quiet") {
		c, err := sidecar("bench-quiet", "warn")
		if err != nil {
			return e, err
		}
		e.targets["sidecar-quiet"] = &target{name: "sidecar-quiet", url: "http://" + quiet + "/", procs: []*child{c}}
	}
	if want("sidecar-2hop") {
		c1, err := sidecar("bench-client", "info")
		if err != nil {
			return e, err
		}
		c2, err := sidecar("bench-server", "info")
		if err != nil {
			return e, err
		}
		e.targets["sidecar-2hop"] = &target{name: "sidecar-2hop", url: "http://" + cli + "/", procs: []*child{c1, c2}}
	}
	for _, px := range []peers.Proxy{peers.Nginx, peers.HAProxy, peers.Caddy} {
		if !want(string(px)) {
			continue
		}
		pdir := filepath.Join(dir, string(px))
		if err := os.MkdirAll(pdir, 0o755); err != nil {
			return e, err
		}
		listen := lo + port()
		argv, err := peers.Write(px, peers.Params{Listen: listen, Upstream: e.upHTTP, Dir: pdir})
		if err != nil {
			return e, err
		}
		c, err := start(string(px), s.ProxyCPU,
			[]string{"GOMAXPROCS=1", "HOME=" + pdir, "XDG_DATA_HOME=" + pdir, "XDG_CONFIG_HOME=" + pdir},
			filepath.Join(pdir, "stdout.log"), argv...)
		if err != nil {
			return e, err
		}
		e.children = append(e.children, c)
		e.targets[string(px)] = &target{name: string(px), url: "http://" + listen + "/", procs: []*child{c}}
	}
	for _, n := range s.Targets {
		t, ok := e.targets[n]
		if !ok {
			return e, fmt.Errorf("unknown target %q (known: %s)", n, allTargets)
		}
		if t.grpc {
			continue
		}
		var c *child
		if len(t.procs) > 0 {
			c = t.procs[0]
		}
		if err := waitHTTP(ctx, c, t.url, "", 20*time.Second); err != nil {
			return e, fmt.Errorf("%s: %w", n, err)
		}
	}
	if s.Many > 0 {
		e.targets["many"] = &target{name: "many", url: "http://" + manyAddr + "/"}
	}
	return e, nil
}
