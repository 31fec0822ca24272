package outlier

// Reason is why a host was ejected (envoy.data.cluster.v3.OutlierEjectionType).
type Reason uint8

const (
	Consecutive5xx Reason = iota
	ConsecutiveGatewayFailure
	ConsecutiveLocalOriginFailure
	SuccessRate
	FailurePercentage
	numReasons
)

// Reasons lists every reason, for metrics.
var Reasons = [...]Reason{Consecutive5xx, ConsecutiveGatewayFailure, ConsecutiveLocalOriginFailure, SuccessRate, FailurePercentage}

func (r Reason) String() string {
	switch r {
	case Consecutive5xx:
		return "consecutive_5xx"
	case ConsecutiveGatewayFailure:
		return "consecutive_gateway_failure"
	case ConsecutiveLocalOriginFailure:
		return "consecutive_local_origin_failure"
	case SuccessRate:
		return "success_rate"
	case FailurePercentage:
		return "failure_percentage"
	}
	return "unknown"
}
