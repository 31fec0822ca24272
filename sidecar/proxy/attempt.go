package proxy

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
	"github.com/seed-a778acb4/consulate/sidecar/retry"
)

// Response flags the proxy adds that package accesslog has no constant for.
const (
	// flagRetryLimitExceeded is Envoy's URX: the last attempt's outcome
	// was retriable but num_retries were used up.
	flagRetryLimitExceeded = "URX"
	// flagDownstreamProtocolError is Envoy's DPE.
	flagDownstreamProtocolError = "DPE"
)

// retryEnd says how an exchange's retrying ended, for the metrics.
type retryEnd uint8

const (
	retryNone      retryEnd = iota // no retry was needed or none allowed
	retrySuccess                   // a retry got a non-retriable outcome
	retryExhausted                 // URX
	retryOverflow                  // the retry circuit breaker refused
)

// noCancel is the cancel func of an attempt without a per-try context.
func noCancel() {}

// attempts sends the request to c, retrying as p says (p may be nil), and
// answers the client with the last attempt's outcome.
func (ex *exchange) attempts(ctx context.Context, c *cluster.Cluster, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, p *config.RetryPolicy, hash uint64, hasHash bool) {
	retries := 0
	if p != nil {
		retries = int(p.NumRetries)
	}
	var tried []*cluster.Host // previous_hosts only
	retryHeld := false
	defer func() {
		if retryHeld {
			c.DoneRetry()
		}
	}()
	for n := 1; ; n++ {
		var host *cluster.Host
		if n > 1 && p.RetryPreviousHosts {
			host = c.PickExcluding(hash, hasHash, tried, int(p.HostSelectionAttempts))
		} else {
			host = c.Pick(hash, hasHash)
		}
		if host == nil {
			ex.localReply(http.StatusServiceUnavailable, accesslog.NoHealthyUpstream, "no healthy upstream")
			return
		}
		if p != nil && p.RetryPreviousHosts {
			tried = append(tried, host)
		}
		ex.entry.UpstreamHost, ex.entry.Attempts = host.Address, n
		host.Begin()
		actx, cancel := ex.tryContext(ctx, p)
		sent := time.Now()
		res, err := ex.send(actx, vh, rt, wc, host)
		if err == nil {
			ex.g.disarmRequest() // Envoy: the response started
			if ex.ended(errRequestTimeout) {
				// The timeout fired first and cut the client's body: the
				// upstream answered a truncated request.
				res.Body.Close()
				res, err = nil, errRequestTimeout
			}
		}
		if retryHeld {
			c.DoneRetry()
			retryHeld = false
		}
		o := ex.judge(ctx, actx, host, res, err)
		again := p != nil && ctx.Err() == nil && ex.replayable() && retry.Retriable(p, o)
		switch {
		case !again:
			if n > 1 {
				ex.retryEnd = retrySuccess
			}
		case n > retries:
			again = false
			ex.retryEnd = retryExhausted
			ex.extraFlag = flagRetryLimitExceeded
		case !c.TryRetry():
			// Envoy: no retry, the last outcome is returned
			// (upstream_rq_retry_overflow).
			again = false
			ex.retryEnd = retryOverflow
			ex.extraFlag = accesslog.UpstreamOverflow
		}
		if again {
			retryHeld = true
			wait, limited := time.Duration(0), false
			if res != nil {
				wait, limited = retry.RateLimitedBackoff(p, res.Header, time.Now(), rand.Int64N)
				res.Body.Close()
			}
			if !limited {
				wait = retry.Backoff(p, n, rand.Int64N)
			}
			ex.stopTry(cancel)
			host.End()
			if !sleep(ctx, wait) {
				code, flag, body := ex.classify(ctx, ctx.Err())
				ex.localReply(code, flag, body)
				return
			}
			continue
		}
		ex.final(host, cancel, actx, res, err, vh, rt, wc, sent)
		return
	}
}

// final delivers the last attempt and then ends it (a function of its own
// so that its defers are not in attempts' loop, where they would allocate).
func (ex *exchange) final(host *cluster.Host, cancel context.CancelFunc, ctx context.Context, res *http.Response, err error, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, sent time.Time) {
	defer host.End()
	defer ex.stopTry(cancel)
	ex.deliver(ctx, res, err, vh, rt, wc, sent)
}

// deliver answers the client with the final attempt's outcome.
func (ex *exchange) deliver(ctx context.Context, res *http.Response, err error, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster, sent time.Time) {
	if err != nil {
		if cluster.IsOverflow(err) {
			ex.overloaded()
			return
		}
		code, flag, body := ex.classify(ctx, err)
		ex.localReply(code, flag, body)
		return
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		ex.upgrade(res)
		return
	}
	// Envoy's router reports the upstream's time to headers.
	res.Header["X-Envoy-Upstream-Service-Time"] = millisValue(time.Since(sent).Milliseconds())
	ex.respond(ctx, res, vh, rt, wc)
}

// smallMillis are shared header values for 0-255 ms (never modified in
// place, like the other shared values).
var smallMillis = func() (v [256][]string) {
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()

func millisValue(ms int64) []string {
	if ms >= 0 && ms < int64(len(smallMillis)) {
		return smallMillis[ms]
	}
	return []string{strconv.FormatInt(ms, 10)}
}

// overloaded answers a circuit-breaker overflow: 503 UO, and Envoy's
// x-envoy-overloaded header for the client.
func (ex *exchange) overloaded() {
	ex.w.Header().Set("X-Envoy-Overloaded", "true")
	ex.localReply(http.StatusServiceUnavailable, accesslog.UpstreamOverflow, "upstream overflow")
}

// tryContext is the context of one attempt: the route's, bounded by the
// policy's per_try_timeout and watched by its per_try_idle_timeout. Envoy
// starts both once the whole request was received, which is the case here
// (a retried body is buffered first).
func (ex *exchange) tryContext(ctx context.Context, p *config.RetryPolicy) (context.Context, context.CancelFunc) {
	if p == nil || p.PerTryTimeout <= 0 && p.PerTryIdleTimeout <= 0 {
		return ctx, noCancel
	}
	cancel := context.CancelFunc(noCancel)
	if p.PerTryTimeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, p.PerTryTimeout)
	}
	if p.PerTryIdleTimeout > 0 {
		ctx, ex.tryIdle = startWatch(ctx, p.PerTryIdleTimeout, errPerTryIdle)
	}
	return ctx, cancel
}

// stopTry ends an attempt's context and its idle watch.
func (ex *exchange) stopTry(cancel context.CancelFunc) {
	ex.tryIdle.stop()
	ex.tryIdle = nil
	cancel()
}

// judge reports the attempt's outcome to the host's outlier detector
// (exactly once per attempt that reached the host) and returns it as the
// retry policy sees it. ctx is the route's context, actx the attempt's.
func (ex *exchange) judge(ctx, actx context.Context, host *cluster.Host, res *http.Response, err error) retry.Outcome {
	if err == nil {
		host.Report(cluster.Result{Kind: cluster.Response, Status: res.StatusCode})
		return retry.ResponseOutcome(res.StatusCode, res.Header)
	}
	switch {
	case ex.r.Context().Err() != nil, ex.ended(errStreamIdle), ex.ended(errRequestTimeout):
		// The downstream went away, idled out or was too slow to send its
		// request: says nothing about the host, and nothing is retried
		// (ctx has ended).
		return retry.Outcome{Failure: retry.Reset}
	case cluster.IsOverflow(err):
		// Refused locally before reaching the host.
		return retry.Outcome{Failure: retry.Overflow}
	case ctx.Err() != nil:
		host.Report(cluster.Result{Kind: cluster.Timeout})
		return retry.Outcome{Failure: retry.PerTryTimeout}
	case actx.Err() != nil:
		host.Report(cluster.Result{Kind: cluster.Timeout})
		return retry.Outcome{Failure: retry.PerTryTimeout}
	case cluster.IsConnectError(err):
		host.Report(cluster.Result{Kind: cluster.ConnectFailed})
		return retry.Outcome{Failure: retry.ConnectFailure}
	case isRefusedStream(err):
		host.Report(cluster.Result{Kind: cluster.Reset})
		return retry.Outcome{Failure: retry.RefusedStream}
	}
	host.Report(cluster.Result{Kind: cluster.Reset})
	return retry.Outcome{Failure: retry.Reset}
}

// replayable: the request can be sent again (no body, or a buffered one).
func (ex *exchange) replayable() bool { return ex.stream == nil }

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isRefusedStream(err error) bool { return strings.Contains(err.Error(), "REFUSED_STREAM") }
