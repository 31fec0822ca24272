// Package probe is the `probe` subcommand of the sidecar and the control
// plane: it asks the process's own admin endpoint whether it is ready (or
// alive) and exits 0 or 1, so an orchestrator can run it as an exec health
// check (Kubernetes exec probes, Nomad script checks, Docker HEALTHCHECK)
// where the admin endpoint listens on loopback only and the image has no
// shell or curl (distroless).
package probe

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Target describes the admin endpoint of one program.
type Target struct {
	// Program names the binary in the usage text ("sidecar").
	Program string
	// AddrEnv is the variable the program reads its admin address from
	// (CONSULATE_ADMIN_ADDR): the probe reads the same one, so a container
	// configured by the environment needs no probe arguments.
	AddrEnv string
	// DefaultAddr is the program's default admin address.
	DefaultAddr string
	// Ready is the readiness path: ready means 200.
	Ready string
	// Live is the liveness path (200 means alive); "" means the Ready
	// path answered with any HTTP status: the process serves.
	Live string
}

// Exit codes.
const (
	OK      = 0 // ready (or alive with -live)
	Failed  = 1 // not ready, not answering, or not alive
	Usage   = 2 // bad arguments
	maxBody = 512
)

// Main runs the probe with args (after "probe") and returns the exit
// code; it prints why on stderr when the answer is not OK.
func Main(args []string, t Target, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet(t.Program+" probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addrDef := t.DefaultAddr
	if v := getenv(t.AddrEnv); v != "" {
		addrDef = v
	}
	addr := fs.String("admin-addr", addrDef, "the admin address the "+t.Program+" listens on (env "+t.AddrEnv+")")
	live := fs.Bool("live", false, liveUsage(t))
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for each answer")
	wait := fs.Duration("wait", 0, "ask again every "+retryEvery.String()+" until the answer is OK or this long has passed (0: ask once); e.g. for systemd's ExecStartPost")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s probe [-admin-addr host:port] [-live] [-timeout 2s] [-wait 0]\n\n"+
			"Exits 0 if the %s's admin endpoint answers %s with 200 (ready), else 1 with the reason.\n"+
			"Use it as an exec health check: the admin endpoint listens on loopback only.\n\nFlags:\n",
			t.Program, t.Program, t.Ready)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return OK
		}
		return Usage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s probe: unexpected arguments %q\n", t.Program, fs.Args())
		return Usage
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "%s probe: -timeout %s: want a positive duration\n", t.Program, *timeout)
		return Usage
	}
	if *wait < 0 {
		fmt.Fprintf(stderr, "%s probe: -wait %s: want a duration ≥ 0\n", t.Program, *wait)
		return Usage
	}
	path, anyStatus := t.Ready, false
	if *live {
		if t.Live != "" {
			path = t.Live
		} else {
			anyStatus = true
		}
	}
	url := "http://" + dialable(*addr) + path
	deadline := time.Now().Add(*wait)
	for {
		why := ask(url, *timeout, anyStatus)
		if why == "" {
			return OK
		}
		if !time.Now().Add(retryEvery).Before(deadline) {
			fmt.Fprintf(stderr, "%s probe: %s\n", t.Program, why)
			return Failed
		}
		time.Sleep(retryEvery)
	}
}

// retryEvery spaces the questions of -wait.
const retryEvery = 250 * time.Millisecond

// ask returns "" if url answers OK (200, or anything with anyStatus),
// else why not.
func ask(url string, timeout time.Duration, anyStatus bool) string {
	code, body, err := get(url, timeout)
	switch {
	case err != nil:
		return err.Error()
	case code == http.StatusOK, anyStatus:
		return ""
	default:
		return fmt.Sprintf("%s: %d %s", url, code, body)
	}
}

func liveUsage(t Target) string {
	if t.Live != "" {
		return "liveness instead of readiness: " + t.Live + " must answer 200"
	}
	return "liveness instead of readiness: any HTTP answer on " + t.Ready + " (the process serves)"
}

// dialable turns a listen address with an unspecified host (":19100",
// "0.0.0.0:19100", "[::]:19100") into one to dial on loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr // the request fails and says why
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

func get(url string, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	// No proxy from the environment: the admin endpoint is local.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return resp.StatusCode, body, nil
}
