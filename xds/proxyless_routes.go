package xds

import (
	"slices"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// grpcRetryOn are the retry_on conditions grpc-go honours (gRFC A44); it
// silently drops the others.
var grpcRetryOn = []string{"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"}

// grpcRoutes cuts a chain's routes down to what grpc-go v1.85 applies
// (gRFC A28 routing, A44 retries, A42 ring-hash header policies) and
// records the rest in w:
//
//   - a route matching query parameters is dropped (grpc-go ignores such
//     routes, so the next one would match instead anyway);
//   - timeout, idle_timeout, prefix_rewrite and header changes are left out
//     (grpc-go ignores them; a gRPC deadline is the caller's);
//   - retry_on keeps the gRPC conditions only, without any the policy is
//     left out; num_retries is always set (grpc-go NACKs 0, and Envoy's
//     default when unset is 1); per_try_timeout, retriable status codes and
//     host predicates are left out;
//   - hash policies other than header are left out.
func grpcRoutes(routes []*routev3.Route, service string, w *warnings) []*routev3.Route {
	res := "routes " + service
	ref := mesh.EntryRef{Kind: mesh.KindServiceRouter, Name: service}
	out := routes[:0]
	for _, r := range routes {
		if len(r.GetMatch().GetQueryParameters()) > 0 {
			w.add(res, ref, "a route matching query parameters is ignored by grpc-go: left out")
			continue
		}
		if len(r.RequestHeadersToAdd)+len(r.RequestHeadersToRemove)+len(r.ResponseHeadersToAdd)+len(r.ResponseHeadersToRemove) > 0 {
			w.add(res, ref, "RequestHeaders/ResponseHeaders are not applied by grpc-go: left out")
			r.RequestHeadersToAdd, r.RequestHeadersToRemove, r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = nil, nil, nil, nil
		}
		a := r.GetRoute()
		if wc := a.GetWeightedClusters(); wc != nil {
			// grpc-go keys weighted clusters by name: legs that differed
			// only by their header changes (left out here) are merged.
			merged := wc.Clusters[:0]
			for _, cw := range wc.Clusters {
				if len(cw.RequestHeadersToAdd)+len(cw.RequestHeadersToRemove)+len(cw.ResponseHeadersToAdd)+len(cw.ResponseHeadersToRemove) > 0 {
					w.add(res, mesh.EntryRef{Kind: mesh.KindServiceSplitter, Name: service}, "split RequestHeaders/ResponseHeaders are not applied by grpc-go: left out")
					cw.RequestHeadersToAdd, cw.RequestHeadersToRemove, cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = nil, nil, nil, nil
				}
				if j := slices.IndexFunc(merged, func(m *routev3.WeightedCluster_ClusterWeight) bool { return m.Name == cw.Name }); j >= 0 {
					merged[j].Weight = wrapperspb.UInt32(merged[j].GetWeight().GetValue() + cw.GetWeight().GetValue())
					continue
				}
				merged = append(merged, cw)
			}
			wc.Clusters = merged
			if len(merged) == 1 {
				a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: merged[0].Name}
			}
		}
		if a.Timeout != nil {
			w.add(res, ref, "RequestTimeout is not applied by grpc-go (set a deadline on the call): left out")
			a.Timeout = nil
		}
		if a.IdleTimeout != nil {
			w.add(res, ref, "IdleTimeout is not applied by grpc-go: left out")
			a.IdleTimeout = nil
		}
		if a.PrefixRewrite != "" {
			w.add(res, ref, "PrefixRewrite is not applied by grpc-go: left out")
			a.PrefixRewrite = ""
		}
		if rp := a.RetryPolicy; rp != nil {
			a.RetryPolicy = grpcRetryPolicy(rp, res, ref, w)
		}
		hp := a.HashPolicy[:0]
		for _, h := range a.HashPolicy {
			if h.GetHeader() != nil {
				hp = append(hp, h)
				continue
			}
			w.add(res, mesh.EntryRef{Kind: mesh.KindServiceResolver, Name: service}, "only header hash policies are applied by grpc-go: others left out")
		}
		a.HashPolicy = hp
		if len(hp) == 0 {
			a.HashPolicy = nil
		}
		out = append(out, r)
	}
	return out
}

func grpcRetryPolicy(rp *routev3.RetryPolicy, res string, ref mesh.EntryRef, w *warnings) *routev3.RetryPolicy {
	var keep, dropped []string
	for _, c := range strings.Split(rp.RetryOn, ",") {
		if slices.Contains(grpcRetryOn, c) {
			keep = append(keep, c)
		} else {
			dropped = append(dropped, c)
		}
	}
	if len(dropped) > 0 {
		w.add(res, ref, "retry conditions %s are not gRPC status codes and are ignored by grpc-go", strings.Join(dropped, ","))
	}
	if len(keep) == 0 {
		w.add(res, ref, "no gRPC retry condition (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable): retries left out")
		return nil
	}
	out := &routev3.RetryPolicy{RetryOn: strings.Join(keep, ","), NumRetries: rp.NumRetries, RetryBackOff: rp.RetryBackOff}
	if out.NumRetries == nil {
		out.NumRetries = wrapperspb.UInt32(1)
	}
	if rp.PerTryTimeout != nil {
		w.add(res, ref, "per-try timeout is not applied by grpc-go: left out")
	}
	return out
}
