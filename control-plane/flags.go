package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// config is what the operator said, from flags and environment.
type config struct {
	ConsulAddr string
	XDSAddr    string
	AdminAddr  string
	LogLevel   string
	LogFormat  string
	Debounce   time.Duration
	Coalesce   time.Duration
	Shutdown   time.Duration
}

// envPrefix prefixes the environment variable of every flag:
// -xds-addr ↔ CONSULATE_XDS_ADDR.
const envPrefix = "CONSULATE_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags reads args (without the program name) over the environment
// getenv; a flag given on the command line beats its environment variable,
// which beats the default.
func parseFlags(args []string, getenv func(string) string, out io.Writer) (config, error) {
	fs := flag.NewFlagSet("control-plane", flag.ContinueOnError)
	fs.SetOutput(out)
	var c config
	consulDefault := "127.0.0.1:8500"
	if v := getenv("CONSUL_HTTP_ADDR"); v != "" {
		consulDefault = v
	}
	str := func(p *string, name, def, usage string) {
		if v := getenv(envName(name)); v != "" {
			def = v
		}
		fs.StringVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	str(&c.ConsulAddr, "consul-addr", consulDefault, "Consul HTTP API address; defaults to $CONSUL_HTTP_ADDR, else 127.0.0.1:8500")
	str(&c.XDSAddr, "xds-addr", "127.0.0.1:18000", "listen address of the xDS (ADS gRPC) server")
	str(&c.AdminAddr, "admin-addr", "127.0.0.1:19000", "listen address of the admin HTTP server (/healthz /readyz /status /metrics)")
	str(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	str(&c.LogFormat, "log-format", "json", "log format: json or console")
	dur := func(p *time.Duration, name string, def time.Duration, usage string) error {
		if v := getenv(envName(name)); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s=%q: %w", envName(name), v, err)
			}
			def = d
		}
		fs.DurationVar(p, name, def, usage+" (env "+envName(name)+")")
		return nil
	}
	// Discovery already coalesces Consul's changes (one model per window),
	// and a rebuild translates only the proxies a change concerns, so both
	// windows are short: together they are the floor of change-to-proxy
	// latency (see "Control-plane scale" in the top README).
	if err := dur(&c.Debounce, "debounce", 10*time.Millisecond, "quiet time before proxies are rebuilt after a mesh change that follows another within it (a change after that much quiet is rebuilt at once)"); err != nil {
		return c, err
	}
	if err := dur(&c.Coalesce, "coalesce", 50*time.Millisecond, "window batching Consul changes into one mesh model (also spaces each blocking query)"); err != nil {
		return c, err
	}
	if err := dur(&c.Shutdown, "shutdown-grace", 5*time.Second, "graceful stop bound on SIGTERM/SIGINT before streams are cut"); err != nil {
		return c, err
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: control-plane [flags]\n"+
			"       control-plane probe [-admin-addr addr] [-live] [-wait 60s]   (exit 0 if /readyz answers 200; see control-plane probe -h)\n\n"+
			"Consulate's xDS control plane: serves Envoy v3 configuration (ADS, State-of-the-World\n"+
			"and Delta) for Consul Connect sidecars and proxyless gRPC clients, built from Consul.\n"+
			"Every flag can also be set by the environment variable shown; a flag wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	switch c.LogFormat {
	case "json", "console":
	default:
		return c, fmt.Errorf("-log-format %q: want json or console", c.LogFormat)
	}
	return c, nil
}
