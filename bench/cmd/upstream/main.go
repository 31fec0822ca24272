// Command upstream is the benchmark's application: it answers every HTTP
// request with the same 1 KiB body, over HTTP/1.1 keep-alive and h2c (prior
// knowledge) on one port, and serves gRPC (grpc.health.v1.Health/Check, a
// unary call) on another. It does as little as a server can, so that what
// the benchmark measures is the proxy in front of it.
//
// Usage:
//
//	upstream -addr 127.0.0.1:8080 [-grpc-addr 127.0.0.1:8081] [-body-bytes 1024]
//
// It runs until SIGTERM or SIGINT.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "HTTP/1.1 and h2c listen address (loopback)")
	grpcAddr := flag.String("grpc-addr", "", "gRPC listen address (loopback); empty: none")
	size := flag.Int("body-bytes", 1024, "response body size")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, *addr, *grpcAddr, *size); err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, addr, grpcAddr string, size int) error {
	body := bytes.Repeat([]byte("x"), size)
	length := strconv.Itoa(size)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			h := w.Header()
			h["Content-Type"] = []string{"text/plain"}
			h["Content-Length"] = []string{length}
			w.Write(body)
		}),
		Protocols:         new(http.Protocols),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(lis) }()

	var gs *grpc.Server
	if grpcAddr != "" {
		glis, err := net.Listen("tcp", grpcAddr)
		if err != nil {
			return err
		}
		gs = grpc.NewServer()
		healthpb.RegisterHealthServer(gs, health.NewServer())
		go func() { errc <- gs.Serve(glis) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if gs != nil {
		gs.Stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
