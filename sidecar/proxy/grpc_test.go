package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// testService answers UnaryCall and StreamingOutputCall, setting a trailer
// and, on request, failing with a status (carried in trailers).
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "unary"))
	if req.GetResponseStatus().GetCode() != 0 {
		return nil, status.Error(codes.Code(req.GetResponseStatus().GetCode()), req.GetResponseStatus().GetMessage())
	}
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: req.GetPayload().GetBody()}}, nil
}

func (testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for i, p := range req.GetResponseParameters() {
		body := []byte(fmt.Sprintf("msg-%d-%d", i, p.GetSize()))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	stream.SetTrailer(metadata.Pairs("x-trailer", "stream"))
	return status.Error(codes.ResourceExhausted, "done streaming")
}

// FullDuplexCall answers each request as it arrives (bidirectional
// streaming: the proxy must not wait for the end of the request).
func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		body := req.GetPayload().GetBody()
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: append([]byte("echo:"), body...)}}); err != nil {
			return err
		}
	}
}

func startGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, testService{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return ln.Addr().String()
}

func TestGRPCLocalReplies(t *testing.T) {
	dead := deadAddr(t)
	rc := &config.RouteConfig{VirtualHosts: []*config.VirtualHost{{Domains: []string{"*"}, Routes: []*config.Route{
		{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/grpc.testing.TestService/UnaryCall", CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "dead"}},
	}}}}
	p := startProxy(t, rc, map[string]*config.Cluster{"dead": oneHost("dead", dead, config.HTTP2)}, nil)
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)
	_, err = c.UnaryCall(t.Context(), &testpb.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "connection failure") {
		t.Errorf("dead backend: %v, want Unavailable with the local reply's message", st)
	}
	if e := p.logFor(t, "/grpc.testing.TestService/UnaryCall"); e["status"] != int64(503) || e["response_flags"] != "UF" {
		t.Errorf("access log %v %v, want 503 UF", e["status"], e["response_flags"])
	}
	_, err = c.EmptyCall(t.Context(), &testpb.Empty{})
	if st := status.Convert(err); st.Code() != codes.Unimplemented {
		t.Errorf("no route: %v, want Unimplemented", st)
	}
}

func TestGRPCThroughProxy(t *testing.T) {
	up := startGRPC(t)
	rt := &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/grpc.testing.TestService/", CaseSensitive: true, GRPC: true},
		Forward: &config.RouteAction{Cluster: "grpc"}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"grpc": oneHost("grpc", up, config.HTTP2)}, nil)
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := testpb.NewTestServiceClient(conn)

	t.Run("unary", func(t *testing.T) {
		var trailer metadata.MD
		res, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ping")}}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if string(res.GetPayload().GetBody()) != "ping" {
			t.Errorf("payload %q", res.GetPayload().GetBody())
		}
		if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "unary" {
			t.Errorf("trailer x-trailer = %v", got)
		}
		if f := p.logFor(t, "/grpc.testing.TestService/UnaryCall"); f["protocol"] != "HTTP/2.0" || f["status"] != int64(200) {
			t.Errorf("access log %v", f)
		}
	})
	t.Run("unary error status", func(t *testing.T) {
		_, err := c.UnaryCall(t.Context(), &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing"}})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such thing" {
			t.Errorf("status %v, want NotFound: no such thing", st)
		}
	})
	t.Run("bidirectional streaming", func(t *testing.T) {
		stream, err := c.FullDuplexCall(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Ping-pong: each answer must arrive before the next request is
		// sent, so neither direction may be buffered.
		for i := range 3 {
			msg := fmt.Sprint("m", i)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatal(err)
			}
			res, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res.GetPayload().GetBody()); got != "echo:"+msg {
				t.Errorf("got %q, want echo:%s", got, msg)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("end of stream: %v, want EOF (status OK)", err)
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		stream, err := c.StreamingOutputCall(t.Context(), &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m, err := stream.Recv()
			if err == io.EOF {
				t.Fatal("stream ended without the status the server sent")
			}
			if err != nil {
				if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "done streaming" {
					t.Errorf("final status %v", st)
				}
				break
			}
			got = append(got, string(m.GetPayload().GetBody()))
		}
		if fmt.Sprint(got) != "[msg-0-1 msg-1-2 msg-2-3]" {
			t.Errorf("messages %v", got)
		}
		if tr := stream.Trailer().Get("x-trailer"); len(tr) != 1 || tr[0] != "stream" {
			t.Errorf("trailer x-trailer = %v", tr)
		}
	})
}
