// Package h1wire holds the HTTP/1.1 wire syntax (RFC 9112) that the
// sidecar's downstream server (sidecar/h1server) and its upstream client
// (sidecar/cluster) both parse: the byte classes of tokens and field
// values, field lines split into spans of one head buffer, chunk-size
// lines, and reading a length of body data off a bufio.Reader.
//
// It is the hot path of every HTTP/1 request: nothing here allocates, and
// the small functions are meant to be inlined into their callers. It
// knows nothing of either side's answers: what is malformed is reported as
// a bool or one of the sentinel errors below, and the server turns it into
// a 400 (or 431, 501), the client into a ProtocolError. Each side keeps
// what differs on purpose (line limits, CRLF strictness after chunk data,
// header canonicalisation).
//
// Stateless: every function works on what it is given and is safe to call
// from any goroutine.
package h1wire
