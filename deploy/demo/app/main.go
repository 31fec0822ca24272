// Command app is the demo service of `make demo` and the end-to-end tests:
// one small configurable HTTP server that answers with its name, version
// and instance, optionally after calling one upstream (through its
// sidecar's outbound listener), and fails a given fraction of requests.
//
//	GET /healthz   200 "ok" (the Consul check)
//	GET /anything  200 {"service","version","instance","upstream":{...}}
//	               503 when this request was picked to fail (-failure-rate)
//	               502 when the upstream call failed or answered non-2xx
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	name, version, instance, listen, upstream string
	failureRate                               float64
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.name, "name", "app", "service name reported in responses")
	fs.StringVar(&o.version, "version", "v1", "version reported in responses")
	fs.StringVar(&o.instance, "instance", "", "instance id reported in responses (default: name)")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8080", "listen address: the demo API and /healthz")
	fs.StringVar(&o.upstream, "upstream", "", "URL to call for every request (its sidecar's outbound listener), e.g. http://127.0.0.1:9191")
	fs.Float64Var(&o.failureRate, "failure-rate", 0, "fraction of requests answered 503, in [0, 1]")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.failureRate < 0 || o.failureRate > 1 {
		return o, fmt.Errorf("-failure-rate %v: want a fraction in [0, 1]", o.failureRate)
	}
	if o.instance == "" {
		o.instance = o.name
	}
	return o, nil
}

// reply is the response body; Upstream nests the upstream's own reply.
type reply struct {
	Service  string          `json:"service"`
	Version  string          `json:"version"`
	Instance string          `json:"instance"`
	Upstream json.RawMessage `json:"upstream,omitempty"`
	Error    string          `json:"error,omitempty"`
}

type app struct {
	o      options
	client *http.Client
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		_, _ = io.WriteString(w, "ok\n")
		return
	}
	rep := reply{Service: a.o.name, Version: a.o.version, Instance: a.o.instance}
	if a.o.failureRate > 0 && rand.Float64() < a.o.failureRate {
		rep.Error = "injected failure"
		writeReply(w, http.StatusServiceUnavailable, rep)
		return
	}
	if a.o.upstream != "" {
		body, err := a.callUpstream(r)
		if err != nil {
			rep.Error = err.Error()
			writeReply(w, http.StatusBadGateway, rep)
			return
		}
		rep.Upstream = body
	}
	writeReply(w, http.StatusOK, rep)
}

// callUpstream forwards the request id so one request can be followed
// through every sidecar's access log.
func (a *app) callUpstream(in *http.Request) (json.RawMessage, error) {
	req, err := http.NewRequestWithContext(in.Context(), http.MethodGet, a.o.upstream+in.URL.Path, nil)
	if err != nil {
		return nil, err
	}
	if id := in.Header.Get("X-Request-Id"); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("upstream body: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("upstream answered %d: %.200s", resp.StatusCode, body)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("upstream answered non-JSON: %.200s", body)
	}
	return body, nil
}

func writeReply(w http.ResponseWriter, code int, rep reply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "app:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, o options) error {
	lis, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	a := &app{o: o, client: &http.Client{Timeout: 5 * time.Second}}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	fmt.Fprintf(os.Stderr, "app %s %s (%s) listening on %s, upstream %q, failure rate %v\n",
		o.name, o.version, o.instance, lis.Addr(), o.upstream, o.failureRate)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
