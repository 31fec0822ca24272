// Package h1server is the sidecar's HTTP/1.x downstream server: it serves
// an http.Handler on accepted connections as net/http's Server does, with
// less work per request, and hands connections that open with the HTTP/2
// prior-knowledge preface (h2c) to a net/http Server.
//
// Why not net/http's server (issue 8): per request it parses into fresh
// maps and strings, clones the response header at WriteHeader, runs a
// background read on another goroutine to notice a client going away,
// and buffers the response through two writers. Here a connection's
// goroutine reads the request into structures it reuses (one string
// allocation for the whole head), calls the handler with a reused
// *http.Request, and writes the response head and a small body with one
// write. The client going away is watched only once somebody asks
// (Request.Context().Done(), which the proxy does 20 ms into a request).
//
// What it keeps from net/http, for the handler and for clients:
// keep-alive and pipelining (requests served in order); Connection: close
// and HTTP/1.0 (keep-alive only when asked for and the length is known);
// Content-Length and chunked request bodies with trailers (Request.Trailer
// declared up front, filled at the end of the body); Expect: 100-continue
// (100 sent on the first body read; any other expectation is 417);
// Hijack (Upgrade/WebSocket), Flush, SetReadDeadline and SetWriteDeadline
// through http.ResponseController; HEAD, 1xx, 204 and 304 without a body;
// a response of unknown length chunked (HTTP/1.1) or ended by closing
// (HTTP/1.0), or given a Content-Length when the handler wrote all of it
// without flushing; trailers (the "Trailer" header's keys, or keys with
// http.TrailerPrefix); panic(http.ErrAbortHandler) cuts the connection;
// MaxHeaderBytes (431), ReadHeaderTimeout (from the first byte of a
// request), IdleTimeout; graceful Shutdown (idle connections closed at
// once, busy ones after their response, h2c ones get GOAWAY).
//
// Stricter than net/http, as Envoy is (RFC 9112 sections 6.1 and 11.2): a
// request with both Content-Length and Transfer-Encoding is refused (400),
// as are obsolete line folding, whitespace before a header's colon, bad or
// differing Content-Lengths and a missing or repeated Host (HTTP/1.1); an
// unknown transfer coding is 501. Every refusal closes the connection.
// Not done, unlike net/http: Content-Type sniffing of responses without
// one (Envoy does not sniff), Pragma: no-cache → Cache-Control rewriting,
// draining up to 256 KiB of a request body the handler left unread (the
// part already received is skipped; otherwise the connection closes after
// the response), and watching for the client leaving while its next
// (pipelined) request is already buffered (a write fails instead).
//
// Concurrency contract. One goroutine per connection reads a request,
// runs the handler on it and writes the response; the next request is
// read only after that. The *http.Request, its header map, body, and the
// ResponseWriter are the connection's and are reused for the next request:
// a handler must not use them once it returned (net/http's rule too). The
// request's context is the connection's and is replaced by a fresh one
// after a request that watched it (Done was called), so a context a
// handler kept never sees a later request. A watch is one extra goroutine
// blocked in a 1-byte read of the connection, started once the request
// body was read to its end; it ends before the next request is read, on
// Hijack, or when the connection closes. A request without a body keeps
// the idle deadline set while the connection waited for it (changing a
// deadline per request costs a runtime timer update), so its watch ends
// quietly, without canceling, about IdleTimeout after the request came. Server methods may be called from
// any goroutine; Shutdown and Close wait for every connection goroutine.
package h1server
