package cluster

// ResultKind says what one attempt to a host ended with, as Envoy's outlier
// detector distinguishes it (envoy.upstream.outlier.Result).
type ResultKind uint8

const (
	// Response: the host answered; Result.Status holds the HTTP status
	// (for gRPC, the HTTP status of the response, 200 on trailers-only
	// errors, as Envoy). 5xx counts for consecutive_5xx; 502, 503 and 504
	// count for consecutive_gateway_failure.
	Response ResultKind = iota
	// ConnectFailed: the connection could not be established
	// (LOCAL_ORIGIN_CONNECT_FAILED; a 503 when local and external errors
	// are not split).
	ConnectFailed
	// Timeout: the attempt timed out (per-try or route timeout,
	// LOCAL_ORIGIN_TIMEOUT; a 504 when not split).
	Timeout
	// Reset: the connection or stream was reset before a complete
	// response (Envoy reports it as LOCAL_ORIGIN_CONNECT_FAILED; a 503
	// when not split).
	Reset
	// LocalSuccess: the connection was established but no response is
	// reported (e.g. the TCP proxy; LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL).
	// A Response implies it; report it only when there is no Response.
	LocalSuccess
)

// Result is the outcome of one attempt, reported with Host.Report.
type Result struct {
	Status int // HTTP status when Kind is Response
	Kind   ResultKind
}

// Report records the outcome of one attempt for outlier detection. The
// proxy calls it exactly once per attempt sent to h. Lock-free, no
// allocation; a no-op when the cluster has no outlier_detection.
func (h *Host) Report(r Result) {
	switch r.Kind {
	case Response:
		h.od.Response(r.Status)
	case ConnectFailed, Reset:
		h.od.LocalFailure(false)
	case Timeout:
		h.od.LocalFailure(true)
	case LocalSuccess:
		h.od.LocalSuccess()
	}
}
