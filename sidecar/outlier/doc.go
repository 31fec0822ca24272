// Package outlier is Envoy's outlier detection
// (envoy.config.cluster.v3.OutlierDetection) for one cluster: a Detector
// and the per-host state it judges.
//
// Semantics, Envoy's (source/common/upstream/outlier_detection_impl.cc and
// the outlier detection architecture overview), defaults in Defaults:
//   - consecutive_5xx (5) counts 5xx responses in a row; consecutive
//     gateway failures (5, enforcing 0) count 502/503/504. Without
//     split_external_local_origin_errors, local-origin events are mapped
//     to codes: connect failure and reset → 503, timeout → 504. With it,
//     they count only for consecutive_local_origin_failure (5) and a
//     response or a successful connection resets that run.
//   - A run reaching its threshold is handled at once (not at the
//     interval): the host is ejected if the hosts already ejected are
//     below max_ejection_percent of all hosts (so with any percentage
//     above 0 a first host may always be ejected, and the last ejection
//     may cross the percentage, as in Envoy before 1.28 and grpc-go; Envoy
//     1.28+ gates the first one on always_eject_one_host, which the
//     decoder does not accept) and a draw below the enforcing_*
//     percentage says so. The counter is reset either way.
//   - The ejection lasts base_ejection_time × the host's multiplier (+1
//     per ejection while multiplier × base < max_ejection_time + base),
//     capped at max_ejection_time (at least base_ejection_time), plus a
//     uniform jitter up to max_ejection_time_jitter. Every interval, an
//     ejected host whose time elapsed returns to service (its counters
//     reset), and a host in service has its multiplier decremented.
//   - At every interval, over the requests of the interval that ended:
//     success_rate ejects hosts below mean − stdev_factor/1000 × stdev
//     when at least success_rate_minimum_hosts hosts had
//     success_rate_request_volume requests; failure_percentage ejects
//     hosts whose failure percentage is ≥ failure_percentage_threshold
//     when at least failure_percentage_minimum_hosts hosts had
//     failure_percentage_request_volume requests. With split errors, the
//     rates are computed from external-origin results only (the local
//     origin success-rate and failure-percentage variants are not
//     implemented: config has no enforcing_local_origin_success_rate).
//
// Concurrency contract. Host's Response, LocalFailure and LocalSuccess are
// the data path's hot path: a few atomic operations, no lock, no
// allocation. A run reaching its threshold sets a bit on the host and
// wakes the detector without blocking. Everything else — ejection,
// return, the ejection multiplier, the interval sweep — happens on the
// goroutine that runs Run (one per cluster, ending with its ctx), under
// the detector's mutex, which the hot path never takes. Process and Sweep
// are what Run calls; tests call them directly with an injected Clock.
// Ejected and LastEjection are atomic reads, safe from any goroutine.
// OnChange runs after the mutex is released, so it may read the hosts.
package outlier
