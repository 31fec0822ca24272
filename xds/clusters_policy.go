package xds

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// upstreamConfigFor is the service-defaults UpstreamConfig of the proxy's
// own service that applies to its upstream named service: Defaults, with
// the fields of the Overrides entry named like the upstream replacing them
// (Consul keys Overrides by upstream, and applies the result to every
// cluster of that upstream's discovery chain).
func upstreamConfigFor(cfg *mesh.Config, downstream, service string) mesh.UpstreamConfig {
	var out mesh.UpstreamConfig
	sd := cfg.ServiceDefaults[downstream]
	if sd == nil {
		return out
	}
	if sd.UpstreamDefaults != nil {
		out = *sd.UpstreamDefaults
	}
	for _, o := range sd.UpstreamOverrides {
		if o.Name == service {
			out = overlay(out, o)
		}
	}
	return out
}

// applyClusterPolicy sets a target cluster's connect timeout, load
// balancer, outlier detection, circuit breakers and panic threshold.
//
// up is the downstream's UpstreamConfig (nil for proxyless clients, which
// have no service of their own). Proxyless clusters stay inside grpc-go's
// subset: MAGLEV becomes RING_HASH and RANDOM ROUND_ROBIN, outlier
// detection is only set when success-rate or failure-percentage keys ask
// for it (an empty one would enable grpc-go's success-rate ejection), and
// what grpc-go ignores is recorded in w.
func applyClusterPolicy(c *clusterv3.Cluster, t *resolvedTarget, up *mesh.UpstreamConfig, ext extSet, w *warnings) {
	proxyless := up == nil
	res := "clusters " + c.GetName()
	resolverRef := mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: t.target.Service}
	timeout := DefaultConnectTimeout
	if r := t.resolver; r != nil && r.ConnectTimeout > 0 {
		timeout = r.ConnectTimeout
	}
	if up != nil && up.ConnectTimeout > 0 {
		timeout = up.ConnectTimeout
	}
	c.ConnectTimeout = durationpb.New(timeout)

	if r := t.resolver; r != nil && r.LoadBalancer != nil {
		lb := r.LoadBalancer
		switch lb.Policy {
		case "least_request":
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			if lr := lb.LeastRequestConfig; lr != nil && lr.ChoiceCount > 0 {
				c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
					ChoiceCount: wrapperspb.UInt32(max(lr.ChoiceCount, 2))}}
			}
		case "random":
			if proxyless {
				w.add(res, resolverRef, "LoadBalancer.Policy random is not supported by grpc-go (NACKed): round_robin instead")
			} else {
				c.LbPolicy = clusterv3.Cluster_RANDOM
			}
		case "ring_hash", "maglev":
			c.LbPolicy = clusterv3.Cluster_RING_HASH
			if lb.Policy == "maglev" {
				if proxyless {
					w.add(res, resolverRef, "LoadBalancer.Policy maglev is not supported by grpc-go (NACKed): ring_hash instead")
				} else {
					c.LbPolicy = clusterv3.Cluster_MAGLEV
				}
			}
			if rh := lb.RingHashConfig; rh != nil && c.LbPolicy == clusterv3.Cluster_RING_HASH &&
				(rh.MinimumRingSize > 0 || rh.MaximumRingSize > 0) {
				cfg := &clusterv3.Cluster_RingHashLbConfig{}
				if rh.MinimumRingSize > 0 {
					cfg.MinimumRingSize = wrapperspb.UInt64(rh.MinimumRingSize)
				}
				if rh.MaximumRingSize > 0 {
					cfg.MaximumRingSize = wrapperspb.UInt64(rh.MaximumRingSize)
				}
				c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: cfg}
			}
		}
	}

	if od := outlierDetection(up, ext); od != nil {
		if proxyless {
			od = proxylessOutlier(od, res, w)
		}
		c.OutlierDetection = od
	}
	if cb := circuitBreakers(up, ext); cb != nil {
		if proxyless {
			w.add(res, mesh.EntryRef{}, "retry budgets are not applied by grpc-go")
		} else {
			c.CircuitBreakers = cb
		}
	}
	if v, ok := ext.float(KeyHealthyPanicThreshold); ok {
		if proxyless {
			w.add(res, mesh.EntryRef{}, "%s is not applied by grpc-go", KeyHealthyPanicThreshold)
		} else {
			c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: v}}
		}
	}
}

// outlierDetection maps PassiveHealthCheck as Consul does (Consul gives
// every upstream cluster an outlier_detection, so Envoy's defaults apply
// when nothing is set: 5 consecutive 5xx eject a host for 30 s), plus the
// extension keys. Nil for proxyless clients without any key.
func outlierDetection(up *mesh.UpstreamConfig, ext extSet) *clusterv3.OutlierDetection {
	od := &clusterv3.OutlierDetection{}
	set := up != nil // sidecars always get one, as from Consul
	if up != nil && up.PassiveHealthCheck != nil {
		p := up.PassiveHealthCheck
		if p.Interval > 0 {
			od.Interval = durationpb.New(p.Interval)
		}
		if p.MaxFailures > 0 {
			od.Consecutive_5Xx = wrapperspb.UInt32(p.MaxFailures)
		}
		if p.EnforcingConsecutive5xx != nil {
			od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(min(*p.EnforcingConsecutive5xx, 100))
		}
		if p.MaxEjectionPercent != nil {
			od.MaxEjectionPercent = wrapperspb.UInt32(min(*p.MaxEjectionPercent, 100))
		}
		if p.BaseEjectionTime != nil && *p.BaseEjectionTime > 0 {
			od.BaseEjectionTime = durationpb.New(*p.BaseEjectionTime)
		}
	}
	u32 := func(key string) *wrapperspb.UInt32Value {
		if v, ok := ext.uint(key); ok {
			set = true
			return wrapperspb.UInt32(v)
		}
		return nil
	}
	od.ConsecutiveGatewayFailure = u32(KeyConsecutiveGatewayFailure)
	od.EnforcingConsecutiveGatewayFailure = u32(KeyEnforcingConsecutiveGateway)
	if od.ConsecutiveGatewayFailure != nil && od.EnforcingConsecutiveGatewayFailure == nil {
		// Envoy enforces gateway failures 0 % by default: setting only
		// the count would do nothing.
		od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
	}
	od.SuccessRateMinimumHosts = u32(KeySuccessRateMinimumHosts)
	od.SuccessRateRequestVolume = u32(KeySuccessRateRequestVolume)
	od.SuccessRateStdevFactor = u32(KeySuccessRateStdevFactor)
	od.EnforcingSuccessRate = u32(KeyEnforcingSuccessRate)
	od.FailurePercentageThreshold = u32(KeyFailurePercentageThreshold)
	od.EnforcingFailurePercentage = u32(KeyEnforcingFailurePercentage)
	if od.FailurePercentageThreshold != nil && od.EnforcingFailurePercentage == nil {
		// Same: failure-percentage ejection is off (0 %) by default.
		od.EnforcingFailurePercentage = wrapperspb.UInt32(100)
	}
	od.FailurePercentageMinimumHosts = u32(KeyFailurePercentageMinimumHosts)
	od.FailurePercentageRequestVolume = u32(KeyFailurePercentageRequestVol)
	if v, ok := ext.duration(KeyMaxEjectionTime); ok {
		od.MaxEjectionTime = durationpb.New(v)
		set = true
	}
	if !set {
		return nil
	}
	return od
}

// proxylessOutlier keeps what grpc-go honours (gRFC A50: success rate,
// failure percentage, interval, ejection times and percent) and records
// the consecutive_* fields it ignores. Without success-rate or
// failure-percentage settings there is nothing grpc-go would do but
// success-rate ejection with defaults, so nil.
func proxylessOutlier(od *clusterv3.OutlierDetection, res string, w *warnings) *clusterv3.OutlierDetection {
	if od.ConsecutiveGatewayFailure != nil {
		w.add(res, mesh.EntryRef{}, "consecutive gateway failure ejection is not applied by grpc-go")
		od.ConsecutiveGatewayFailure, od.EnforcingConsecutiveGatewayFailure = nil, nil
	}
	sr := od.SuccessRateMinimumHosts != nil || od.SuccessRateRequestVolume != nil || od.SuccessRateStdevFactor != nil || od.EnforcingSuccessRate != nil
	fp := od.FailurePercentageThreshold != nil
	if !sr && !fp {
		return nil
	}
	if !sr {
		// grpc-go's success-rate default enforcement is 100 %: keep it
		// off unless asked for.
		od.EnforcingSuccessRate = wrapperspb.UInt32(0)
	}
	return od
}

// circuitBreakers maps Limits (Consul: MaxConnections → max_connections,
// MaxPendingRequests → max_pending_requests, MaxConcurrentRequests →
// max_requests; a zero or negative limit is left at Envoy's default) and
// the retry budget keys into the DEFAULT priority's thresholds.
func circuitBreakers(up *mesh.UpstreamConfig, ext extSet) *clusterv3.CircuitBreakers {
	th := &clusterv3.CircuitBreakers_Thresholds{}
	set := false
	limit := func(p *int) *wrapperspb.UInt32Value {
		if p == nil || *p <= 0 {
			return nil
		}
		set = true
		return wrapperspb.UInt32(uint32(min(*p, 1<<31)))
	}
	if up != nil && up.Limits != nil {
		th.MaxConnections = limit(up.Limits.MaxConnections)
		th.MaxPendingRequests = limit(up.Limits.MaxPendingRequests)
		th.MaxRequests = limit(up.Limits.MaxConcurrentRequests)
	}
	pct, hasPct := ext.float(KeyRetryBudgetPercent)
	minc, hasMin := ext.uint(KeyRetryBudgetMinConcurrency)
	if hasPct || hasMin {
		set = true
		th.RetryBudget = &clusterv3.CircuitBreakers_Thresholds_RetryBudget{}
		if hasPct {
			th.RetryBudget.BudgetPercent = &typev3.Percent{Value: pct}
		}
		if hasMin {
			th.RetryBudget.MinRetryConcurrency = wrapperspb.UInt32(minc)
		}
	}
	if !set {
		return nil
	}
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}
