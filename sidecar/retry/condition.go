package retry

import (
	"net/http"
	"slices"
	"strconv"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// Failure is how an attempt ended without a response.
type Failure uint8

const (
	// NoFailure: a response (headers) arrived.
	NoFailure Failure = iota
	// ConnectFailure: the connection could not be established.
	ConnectFailure
	// RefusedStream: an HTTP/2 stream reset with REFUSED_STREAM.
	RefusedStream
	// Reset: the upstream closed or reset before the response headers.
	Reset
	// PerTryTimeout: the attempt's per_try_timeout (or per_try_idle_timeout)
	// expired before the response headers.
	PerTryTimeout
	// Overflow: a local circuit breaker refused the attempt. Never retried.
	Overflow
)

// Outcome is what one attempt produced, as far as retrying is concerned.
type Outcome struct {
	Failure Failure
	// Status is the response status when Failure is NoFailure.
	Status int
	// GRPCStatus is the grpc-status of the response headers, -1 when absent.
	GRPCStatus int
	// Overloaded: the response carried x-envoy-overloaded.
	Overloaded bool
	// Header is the response's header (retriable_headers), nil without a
	// response.
	Header http.Header
}

// ResponseOutcome reads an upstream response's status and headers.
func ResponseOutcome(status int, h http.Header) Outcome {
	o := Outcome{Status: status, GRPCStatus: -1, Header: h}
	if vs := h["Grpc-Status"]; len(vs) > 0 {
		if n, err := strconv.Atoi(vs[0]); err == nil {
			o.GRPCStatus = n
		}
	}
	o.Overloaded = len(h["X-Envoy-Overloaded"]) > 0
	return o
}

// gRPC status codes of the gRPC retry conditions.
const (
	grpcCancelled         = 1
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcInternal          = 13
	grpcUnavailable       = 14
)

// noResponse are the conditions that retry an attempt that got no
// response at all (Envoy counts a reset as a 5xx).
const noResponse = config.Retry5xx | config.RetryGatewayError | config.RetryReset

// Retriable reports whether p retries an attempt that ended with o.
func Retriable(p *config.RetryPolicy, o Outcome) bool {
	if p == nil {
		return false
	}
	on := p.RetryOn
	switch o.Failure {
	case Overflow:
		return false
	case ConnectFailure:
		return on&(noResponse|config.RetryConnectFailure) != 0
	case RefusedStream:
		return on&(noResponse|config.RetryRefusedStream) != 0
	case Reset, PerTryTimeout:
		return on&noResponse != 0
	}
	if o.Overloaded {
		return false
	}
	s := o.Status
	switch {
	case on&config.Retry5xx != 0 && s >= 500 && s <= 599:
		return true
	case on&config.RetryGatewayError != 0 && (s == 502 || s == 503 || s == 504):
		return true
	case on&config.RetryRetriable4xx != 0 && s == http.StatusConflict:
		return true
	case on&config.RetryRetriableStatusCodes != 0 && s >= 0 && slices.Contains(p.RetriableStatusCodes, uint32(s)):
		return true
	case on&config.RetryRetriableHeaders != 0 && headersMatch(p.RetriableHeaders, o.Header):
		return true
	}
	return grpcRetriable(on, o.GRPCStatus)
}

func grpcRetriable(on config.RetryOn, code int) bool {
	switch code {
	case grpcCancelled:
		return on&config.RetryGRPCCancelled != 0
	case grpcDeadlineExceeded:
		return on&config.RetryGRPCDeadlineExceeded != 0
	case grpcResourceExhausted:
		return on&config.RetryGRPCResourceExhausted != 0
	case grpcInternal:
		return on&config.RetryGRPCInternal != 0
	case grpcUnavailable:
		return on&config.RetryGRPCUnavailable != 0
	}
	return false
}
