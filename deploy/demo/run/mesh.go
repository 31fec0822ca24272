package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

func binaries(dir string) launch.Binaries {
	return launch.Binaries{
		ControlPlane: filepath.Join(dir, "control-plane"),
		Sidecar:      filepath.Join(dir, "sidecar"),
		App:          filepath.Join(dir, "demo-app"),
	}
}

// mesh is everything the demo started, in start order.
type mesh struct {
	bins      launch.Binaries
	consulBin string
	dir       string
	out       io.Writer

	consul   *launch.Consul
	cp       *launch.ControlPlane
	members  []*member
	sidecars map[string]*launch.Sidecar // by instance ID
	procs    []*launch.Process          // every started process, in start order
	started  int
}

func (m *mesh) track(p *launch.Process) {
	m.procs = append(m.procs, p)
	m.started++
}

// startTimeout bounds the whole start-up; a first run on a loaded machine
// takes seconds, not minutes.
const startTimeout = 2 * time.Minute

func (m *mesh) start(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	var err error
	if m.consul, err = launch.StartConsul(ctx, m.consulBin, m.dir); err != nil {
		return fmt.Errorf("consul: %w", err)
	}
	m.track(m.consul.Process)
	fmt.Fprintf(m.out, "  consul         %s\n", m.consul.HTTPAddr)
	for _, e := range configEntries() {
		if _, _, err := m.consul.Client.ConfigEntries().Set(e, nil); err != nil {
			return fmt.Errorf("config entry %s/%s: %w", e.GetKind(), e.GetName(), err)
		}
		fmt.Fprintf(m.out, "  config entry   %s/%s\n", e.GetKind(), e.GetName())
	}
	if m.cp, err = launch.StartControlPlane(ctx, m.bins.ControlPlane, m.dir, m.consul.HTTPAddr, 0, 0); err != nil {
		return err
	}
	m.track(m.cp.Process)
	fmt.Fprintf(m.out, "  control plane  xds %s, admin %s\n", m.cp.XDSAddr, m.cp.AdminAddr)

	m.members = topology()
	if err := assignPorts(m.members); err != nil {
		return err
	}
	m.sidecars = map[string]*launch.Sidecar{}
	for _, mb := range m.members {
		if err := m.startMember(ctx, mb); err != nil {
			return err
		}
	}
	return m.waitRoutable(ctx)
}

// startMember starts the app, registers it with its sidecar_service, and
// starts the sidecar.
func (m *mesh) startMember(ctx context.Context, mb *member) error {
	upstream := ""
	if len(mb.Upstreams) > 0 {
		upstream = "http://" + launch.Addr(mb.Upstreams[0].LocalBindPort)
	}
	app, err := launch.StartApp(ctx, m.bins.App, m.dir, launch.AppOptions{
		Name: mb.Service, Version: mb.Version, Instance: mb.ID, Port: mb.AppPort,
		Upstream: upstream, FailureRate: mb.failureRate,
	})
	if err != nil {
		return err
	}
	m.track(app)
	if err := launch.Register(m.consul.Client, mb.Instance); err != nil {
		return err
	}
	sc, err := launch.StartSidecar(m.bins.Sidecar, m.dir, mb.ProxyID(), m.cp.XDSAddr, 0)
	if err != nil {
		return err
	}
	m.track(sc.Process)
	m.sidecars[mb.ID] = sc
	note := ""
	if mb.flaky {
		note = fmt.Sprintf("  (flaky: fails %.0f%%)", mb.failureRate*100)
	}
	fmt.Fprintf(m.out, "  %-14s %s app %s, sidecar %s (admin %s)%s\n",
		mb.ID, mb.Version, launch.Addr(mb.AppPort), launch.Addr(mb.SidecarPort), sc.AdminAddr, note)
	return nil
}

// waitRoutable waits until every sidecar is ready, Consul reports every
// sidecar passing, and every client sidecar holds all its upstream's
// instances: from then on a request can reach every instance.
func (m *mesh) waitRoutable(ctx context.Context) error {
	want := map[string]int{}
	for _, mb := range m.members {
		want[mb.Service]++
	}
	for _, mb := range m.members {
		if err := m.sidecars[mb.ID].WaitReady(ctx); err != nil {
			return err
		}
	}
	for svc, n := range want {
		if err := launch.WaitConnectPassing(ctx, m.consul.Client, svc, n); err != nil {
			return fmt.Errorf("consul: %w", err)
		}
	}
	for _, mb := range m.members {
		sc := m.sidecars[mb.ID]
		for _, u := range mb.Upstreams {
			if err := launch.WaitServiceHosts(ctx, sc.Done(), sc.AdminAddr, u.Service, want[u.Service]); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(m.out, "  every sidecar is ready and sees every instance of its upstreams")
	return nil
}

// stop stops every process, newest first, each within a grace period.
func (m *mesh) stop() error {
	var errs []error
	for i := len(m.procs) - 1; i >= 0; i-- {
		if err := m.procs[i].Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	m.procs = nil
	return errors.Join(errs...)
}

// entry is the web sidecar's public listener: the mesh's front door.
func (m *mesh) entry() string {
	for _, mb := range m.members {
		if mb.Service == "web" {
			return "http://" + launch.Addr(mb.SidecarPort) + "/"
		}
	}
	return ""
}

func (m *mesh) printURLs() {
	fmt.Fprintln(m.out, "\nPoke at it:")
	fmt.Fprintf(m.out, "  web entry point     curl %scheckout\n", m.entry())
	fmt.Fprintf(m.out, "  Consul UI           %s\n", m.consul.UIURL())
	fmt.Fprintf(m.out, "  control plane       http://%s/status  (/healthz /readyz /metrics)\n", m.cp.AdminAddr)
	for _, mb := range m.members {
		fmt.Fprintf(m.out, "  sidecar %-11s http://%s/clusters  (/ready /config_dump /metrics)\n", mb.ID, m.sidecars[mb.ID].AdminAddr)
	}
	fmt.Fprintf(m.out, "  logs                %s\n", m.dir)
}
