package proxy

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// flakyService fails every odd-numbered UnaryCall with UNAVAILABLE: grpc-go
// answers such a call Trailers-Only (grpc-status in the headers).
type flakyService struct {
	testpb.UnimplementedTestServiceServer
	calls atomic.Int32
}

func (s *flakyService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if s.calls.Add(1)%2 == 1 {
		return nil, status.Error(codes.Unavailable, "flaky")
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func startFlakyGRPC(t *testing.T) (string, *flakyService) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &flakyService{}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, svc)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return ln.Addr().String(), svc
}

func TestGRPCRetryOnUnavailable(t *testing.T) {
	tests := []struct {
		name      string
		on        config.RetryOn
		wantFails int
	}{
		{"unavailable retried", config.RetryGRPCUnavailable, 0},
		{"5xx does not see gRPC errors", config.Retry5xx, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, svc := startFlakyGRPC(t)
			p := fastPolicy(tt.on)
			rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true, GRPC: true}, Forward: &config.RouteAction{Cluster: "g", RetryPolicy: p, Timeout: 5 * time.Second}}
			px := startProxy(t, catchAll(rt), map[string]*config.Cluster{"g": oneHost("g", addr, config.HTTP2)}, nil)
			conn, err := grpc.NewClient(px.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			c := testpb.NewTestServiceClient(conn)
			fails := 0
			for i := range 10 {
				res, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte{byte(i)}}})
				switch {
				case status.Code(err) == codes.Unavailable:
					fails++
				case err != nil:
					t.Fatalf("call %d: %v", i, err)
				case len(res.GetPayload().GetBody()) != 1 || res.GetPayload().GetBody()[0] != byte(i):
					t.Errorf("call %d: payload %v (the request body was not replayed intact)", i, res.GetPayload().GetBody())
				}
			}
			if fails != tt.wantFails {
				t.Errorf("%d of 10 calls failed, want %d (server saw %d calls)", fails, tt.wantFails, svc.calls.Load())
			}
		})
	}
}
