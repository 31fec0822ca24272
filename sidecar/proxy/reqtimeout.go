package proxy

import "errors"

// errRequestTimeout is the guard's cause when the connection manager's
// request_timeout expired before the whole request was received (Envoy's
// HttpConnectionManager.request_timeout: armed when the request starts,
// disarmed once the whole request was received — the body's end, or no
// body — or the response started; off by default).
var errRequestTimeout = errors.New("request timeout")
