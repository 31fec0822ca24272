package launch

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Binaries are the paths of the programs a mesh runs.
type Binaries struct {
	ControlPlane, Sidecar, App string
}

// ControlPlane is a started control-plane process.
type ControlPlane struct {
	*Process
	XDSAddr, AdminAddr string
}

// StartControlPlane runs the control plane on the given ports (0: free
// ones) and waits for its /readyz.
func StartControlPlane(ctx context.Context, bin, logDir, consulAddr string, xdsPort, adminPort int) (*ControlPlane, error) {
	if xdsPort == 0 || adminPort == 0 {
		ps, err := FreePorts(2)
		if err != nil {
			return nil, err
		}
		xdsPort, adminPort = ps[0], ps[1]
	}
	cp := &ControlPlane{XDSAddr: Addr(xdsPort), AdminAddr: Addr(adminPort)}
	p, err := Start(Spec{Name: "control-plane", Path: bin, LogDir: logDir, Args: []string{
		"-consul-addr", consulAddr, "-xds-addr", cp.XDSAddr, "-admin-addr", cp.AdminAddr,
		"-shutdown-grace", "2s",
	}})
	if err != nil {
		return nil, err
	}
	cp.Process = p
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := WaitHTTP200(wctx, p.Done(), "http://"+cp.AdminAddr+"/readyz"); err != nil {
		p.Kill()
		return nil, fmt.Errorf("control-plane: %w\n%s", err, p.LogTail(2000))
	}
	return cp, nil
}

// Sidecar is a started sidecar process.
type Sidecar struct {
	*Process
	ProxyID, AdminAddr string
}

// StartSidecar runs a sidecar for proxyID against the control plane at
// xdsAddr, its admin on adminPort (0: a free one). It does not wait: a
// sidecar reports ready only once its proxy registration exists and its
// first configuration arrived (see WaitReady).
func StartSidecar(bin, logDir, proxyID, xdsAddr string, adminPort int) (*Sidecar, error) {
	if adminPort == 0 {
		ps, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		adminPort = ps[0]
	}
	s := &Sidecar{ProxyID: proxyID, AdminAddr: Addr(adminPort)}
	p, err := Start(Spec{Name: "sidecar-" + proxyID, Path: bin, LogDir: logDir, Args: []string{
		"-proxy-id", proxyID, "-control-plane", xdsAddr, "-admin-addr", s.AdminAddr, "-drain-timeout", "2s",
	}})
	if err != nil {
		return nil, err
	}
	s.Process = p
	return s, nil
}

// WaitReady waits for the sidecar's /ready (first complete config applied).
func (s *Sidecar) WaitReady(ctx context.Context) error {
	if err := WaitHTTP200(ctx, s.Done(), "http://"+s.AdminAddr+"/ready"); err != nil {
		return fmt.Errorf("sidecar %s: %w\n%s", s.ProxyID, err, s.LogTail(2000))
	}
	return nil
}

// AppOptions configure one demo app process (deploy/demo/app).
type AppOptions struct {
	Name, Version, Instance string
	Port                    int
	// Upstream is the URL the app calls for each request ("" for none):
	// its sidecar's outbound listener.
	Upstream    string
	FailureRate float64
}

// StartApp runs the demo app and waits for its /healthz.
func StartApp(ctx context.Context, bin, logDir string, o AppOptions) (*Process, error) {
	args := []string{"-name", o.Name, "-version", o.Version, "-instance", o.Instance,
		"-listen", Addr(o.Port), "-failure-rate", strconv.FormatFloat(o.FailureRate, 'f', -1, 64)}
	if o.Upstream != "" {
		args = append(args, "-upstream", o.Upstream)
	}
	p, err := Start(Spec{Name: "app-" + o.Instance, Path: bin, LogDir: logDir, Args: args})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := WaitHTTP200(wctx, p.Done(), "http://"+Addr(o.Port)+"/healthz"); err != nil {
		p.Kill()
		return nil, fmt.Errorf("app %s: %w\n%s", o.Instance, err, p.LogTail(2000))
	}
	return p, nil
}
