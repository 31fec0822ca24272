package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/seed-a778acb4/consulate/sidecar/accesslog"
	"github.com/seed-a778acb4/consulate/sidecar/config"
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// respond streams the upstream response to the client.
func (ex *exchange) respond(ctx context.Context, res *http.Response, vh *config.VirtualHost, rt *config.Route, wc *config.WeightedCluster) {
	defer res.Body.Close()
	hdr := ex.w.Header()
	copyHeader(hdr, res.Header)
	if len(res.Trailer) > 0 {
		keys := make([]string, 0, len(res.Trailer))
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		hdr["Trailer"] = keys
	}
	ex.mutateResponse(hdr, vh, rt, wc)
	ex.attemptCountHeader()
	if ex.setCookie != "" {
		hdr.Add("Set-Cookie", ex.setCookie)
	}
	ex.w.WriteHeader(res.StatusCode)
	ex.entry.Status = res.StatusCode

	if err := ex.copyBody(res); err != nil {
		switch {
		case ex.r.Context().Err() != nil:
			ex.entry.Flags = accesslog.DownstreamConnTermination
			return
		case errors.Is(err, errDownstreamWrite):
			ex.entry.Flags = accesslog.DownstreamConnTermination
			return
		case ex.ended(errStreamIdle):
			ex.entry.Flags = accesslog.StreamIdleTimeout
		case ex.ended(errRouteTimeout), ctx.Err() == context.DeadlineExceeded, tryIdledOut(ctx):
			ex.entry.Flags = accesslog.UpstreamRequestTimeout
		case isStreamReset(err):
			ex.entry.Flags = accesslog.UpstreamRemoteReset
		default:
			ex.entry.Flags = accesslog.UpstreamConnTermination
		}
		// The response started: reset the downstream stream so the client
		// sees a truncated response, not a complete one.
		panic(http.ErrAbortHandler)
	}
	for k, vs := range res.Trailer {
		hdr[http.TrailerPrefix+k] = vs
	}
}

var errDownstreamWrite = errors.New("downstream write failed")

// copyBody streams the body with a pooled buffer, flushing after each
// chunk when the length is unknown (streaming responses, gRPC).
func (ex *exchange) copyBody(res *http.Response) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	flusher, _ := ex.w.(http.Flusher)
	flushEach := res.ContentLength == -1 && flusher != nil
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			ex.g.touch()
			ex.tryIdle.touch()
			wn, werr := ex.w.Write(buf[:n])
			ex.entry.BytesSent += int64(wn)
			if werr != nil {
				return errDownstreamWrite
			}
			if flushEach {
				flusher.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
