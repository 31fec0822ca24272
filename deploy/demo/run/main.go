// Command run is `make demo`: it starts a whole mesh on loopback — a Consul
// dev agent, the control plane, and the demo services (deploy/demo/app),
// each with its sidecar, registered as Consul users register them — drives
// some traffic through it, prints what happened, and leaves the mesh
// running until Ctrl-C (or -duration), then stops everything it started.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	binDir, consulBin, workDir string
	requests, concurrency      int
	// duration is how long the mesh stays up after the story; 0 means
	// until SIGINT/SIGTERM.
	duration time.Duration
	keepLogs bool
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.binDir, "bin", "bin", "directory holding control-plane, sidecar and demo-app")
	fs.StringVar(&o.consulBin, "consul", defaultConsul(), "Consul agent binary (make consul builds it); env CONSUL_BIN")
	fs.StringVar(&o.workDir, "workdir", "", "directory for logs and Consul's data (default: a new temporary directory)")
	fs.IntVar(&o.requests, "requests", 300, "requests to send through web's sidecar for the story")
	fs.IntVar(&o.concurrency, "concurrency", 4, "concurrent clients sending them")
	fs.DurationVar(&o.duration, "duration", 0, "how long to keep the mesh running after the story (0: until Ctrl-C)")
	fs.BoolVar(&o.keepLogs, "keep-logs", false, "keep the work directory (logs) after exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.requests < 1 || o.concurrency < 1 {
		return o, errors.New("-requests and -concurrency must be positive")
	}
	if o.duration < 0 {
		return o, errors.New("-duration must not be negative")
	}
	return o, nil
}

// defaultConsul is where `make consul` caches the agent, unless CONSUL_BIN says.
func defaultConsul() string {
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "consul"
	}
	return filepath.Join(dir, "consulate", "consul-1.14.11")
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts the mesh, tells the story, holds, and always stops what it
// started before returning.
func run(ctx context.Context, o options, out io.Writer) (err error) {
	for _, p := range []string{o.consulBin, filepath.Join(o.binDir, "control-plane"), filepath.Join(o.binDir, "sidecar"), filepath.Join(o.binDir, "demo-app")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run `make demo`, which builds everything)", err)
		}
	}
	dir := o.workDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "consulate-demo-"); err != nil {
			return err
		}
		if !o.keepLogs {
			defer os.RemoveAll(dir)
		}
	}
	m := &mesh{bins: binaries(o.binDir), consulBin: o.consulBin, dir: dir, out: out}
	defer func() {
		fmt.Fprintln(out, "\nstopping the mesh ...")
		if serr := m.stop(); serr != nil && err == nil {
			err = serr
		}
		fmt.Fprintf(out, "stopped %d processes; nothing left running\n", m.started)
	}()
	fmt.Fprintf(out, "starting the mesh on 127.0.0.1 (logs in %s)\n", dir)
	if err := m.start(ctx); err != nil {
		return err
	}
	st, err := m.drive(ctx, o.requests, o.concurrency)
	if err != nil {
		return err
	}
	if err := m.tell(ctx, st); err != nil {
		return err
	}
	m.printURLs()
	return hold(ctx, o.duration, out)
}

func hold(ctx context.Context, d time.Duration, out io.Writer) error {
	if d == 0 {
		fmt.Fprintln(out, "\nThe mesh keeps running: press Ctrl-C to stop it.")
		<-ctx.Done()
		return nil
	}
	fmt.Fprintf(out, "\nThe mesh keeps running for %s (-duration).\n", d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return nil
}
