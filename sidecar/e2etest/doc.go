// Package e2etest holds end-to-end tests of the sidecar's resilience
// (issue 5): a real go-control-plane server in process pushes Envoy
// resources (retry_policy, outlier_detection) over ADS, the sidecar's xDS
// client decodes and applies them to a real listener manager, and real
// upstream servers on loopback fail on command. It has no non-test code.
//
// Concurrency contract: each test owns its control plane, sidecar and
// upstreams, and stops them (and every goroutine they started) before it
// returns; goleak checks that in TestMain.
package e2etest
