package retry

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func status(s int) Outcome { return Outcome{Status: s, GRPCStatus: -1} }

func grpc(code int) Outcome { return Outcome{Status: 200, GRPCStatus: code} }

func TestRetriable(t *testing.T) {
	tests := []struct {
		name  string
		on    config.RetryOn
		codes []uint32
		o     Outcome
		want  bool
	}{
		{"5xx retries 500", config.Retry5xx, nil, status(500), true},
		{"5xx retries 503", config.Retry5xx, nil, status(503), true},
		{"5xx retries 599", config.Retry5xx, nil, status(599), true},
		{"5xx does not retry 404", config.Retry5xx, nil, status(404), false},
		{"5xx does not retry 200", config.Retry5xx, nil, status(200), false},
		{"5xx retries connect failure", config.Retry5xx, nil, Outcome{Failure: ConnectFailure}, true},
		{"5xx retries reset", config.Retry5xx, nil, Outcome{Failure: Reset}, true},
		{"5xx retries refused stream", config.Retry5xx, nil, Outcome{Failure: RefusedStream}, true},
		{"5xx retries per-try timeout", config.Retry5xx, nil, Outcome{Failure: PerTryTimeout}, true},
		{"5xx never retries overflow", config.Retry5xx, nil, Outcome{Failure: Overflow}, false},
		{"5xx never retries x-envoy-overloaded", config.Retry5xx, nil, Outcome{Status: 503, GRPCStatus: -1, Overloaded: true}, false},
		{"gateway-error retries 502", config.RetryGatewayError, nil, status(502), true},
		{"gateway-error retries 503", config.RetryGatewayError, nil, status(503), true},
		{"gateway-error retries 504", config.RetryGatewayError, nil, status(504), true},
		{"gateway-error does not retry 500", config.RetryGatewayError, nil, status(500), false},
		{"gateway-error retries reset", config.RetryGatewayError, nil, Outcome{Failure: Reset}, true},
		{"gateway-error retries per-try timeout", config.RetryGatewayError, nil, Outcome{Failure: PerTryTimeout}, true},
		{"reset retries reset", config.RetryReset, nil, Outcome{Failure: Reset}, true},
		{"reset retries connect failure", config.RetryReset, nil, Outcome{Failure: ConnectFailure}, true},
		{"reset retries per-try timeout", config.RetryReset, nil, Outcome{Failure: PerTryTimeout}, true},
		{"reset does not retry 503", config.RetryReset, nil, status(503), false},
		{"connect-failure retries connect failure", config.RetryConnectFailure, nil, Outcome{Failure: ConnectFailure}, true},
		{"connect-failure does not retry reset", config.RetryConnectFailure, nil, Outcome{Failure: Reset}, false},
		{"connect-failure does not retry 503", config.RetryConnectFailure, nil, status(503), false},
		{"connect-failure does not retry per-try timeout", config.RetryConnectFailure, nil, Outcome{Failure: PerTryTimeout}, false},
		{"retriable-4xx retries 409", config.RetryRetriable4xx, nil, status(409), true},
		{"retriable-4xx does not retry 429", config.RetryRetriable4xx, nil, status(429), false},
		{"retriable-4xx does not retry 500", config.RetryRetriable4xx, nil, status(500), false},
		{"refused-stream retries refused stream", config.RetryRefusedStream, nil, Outcome{Failure: RefusedStream}, true},
		{"refused-stream does not retry reset", config.RetryRefusedStream, nil, Outcome{Failure: Reset}, false},
		{"retriable-status-codes retries a listed code", config.RetryRetriableStatusCodes, []uint32{418, 429}, status(429), true},
		{"retriable-status-codes does not retry an unlisted code", config.RetryRetriableStatusCodes, []uint32{418}, status(503), false},
		{"codes without the condition do nothing", config.Retry5xx, []uint32{429}, status(429), false},
		{"retriable-headers without headers matches nothing", config.RetryRetriableHeaders, nil, status(503), false},
		{"cancelled retries grpc 1", config.RetryGRPCCancelled, nil, grpc(1), true},
		{"deadline-exceeded retries grpc 4", config.RetryGRPCDeadlineExceeded, nil, grpc(4), true},
		{"resource-exhausted retries grpc 8", config.RetryGRPCResourceExhausted, nil, grpc(8), true},
		{"internal retries grpc 13", config.RetryGRPCInternal, nil, grpc(13), true},
		{"unavailable retries grpc 14", config.RetryGRPCUnavailable, nil, grpc(14), true},
		{"unavailable does not retry grpc 13", config.RetryGRPCUnavailable, nil, grpc(13), false},
		{"unavailable does not retry grpc ok", config.RetryGRPCUnavailable, nil, grpc(0), false},
		{"5xx does not retry a grpc error in a 200", config.Retry5xx, nil, grpc(14), false},
		{"grpc conditions do not retry resets", config.RetryGRPCUnavailable, nil, Outcome{Failure: Reset}, false},
		{"no condition retries nothing", 0, nil, status(503), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &config.RetryPolicy{RetryOn: tt.on, NumRetries: 1, RetriableStatusCodes: tt.codes}
			if got := Retriable(p, tt.o); got != tt.want {
				t.Errorf("Retriable(%v, %+v) = %v, want %v", tt.on, tt.o, got, tt.want)
			}
		})
	}
	t.Run("nil policy", func(t *testing.T) {
		if Retriable(nil, status(503)) {
			t.Error("a nil policy retried")
		}
	})
}

func TestResponseOutcome(t *testing.T) {
	tests := []struct {
		name   string
		status int
		h      http.Header
		want   Outcome
	}{
		{"plain", 503, http.Header{}, Outcome{Status: 503, GRPCStatus: -1}},
		{"grpc trailers-only", 200, http.Header{"Grpc-Status": {"14"}}, Outcome{Status: 200, GRPCStatus: 14}},
		{"grpc status garbage", 200, http.Header{"Grpc-Status": {"x"}}, Outcome{Status: 200, GRPCStatus: -1}},
		{"overloaded", 503, http.Header{"X-Envoy-Overloaded": {"true"}}, Outcome{Status: 503, GRPCStatus: -1, Overloaded: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.want.Header = tt.h
			if diff := cmp.Diff(tt.want, ResponseOutcome(tt.status, tt.h)); diff != "" {
				t.Errorf("ResponseOutcome (-want +got):\n%s", diff)
			}
		})
	}
}
