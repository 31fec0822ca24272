package h1server

import (
	"bufio"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// statusError is a request refused before the handler: the status to
// answer, after which the connection closes.
type statusError struct{ code int }

func (e *statusError) Error() string { return "h1server: " + statusText(e.code) }

var (
	errBadRequest   = &statusError{http.StatusBadRequest}
	errTooLarge     = &statusError{http.StatusRequestHeaderFieldsTooLarge}
	errNotImpl      = &statusError{http.StatusNotImplemented}
	errVersion      = &statusError{http.StatusHTTPVersionNotSupported}
	errExpectFailed = &statusError{http.StatusExpectationFailed}
)

// urlParts holds the request's URL; reused.
type urlParts = url.URL

// chunkedTE is Request.TransferEncoding of a chunked request.
var chunkedTE = []string{"chunked"}

// readRequest reads and checks the next request's head and sets up c.req
// and its body. A *statusError says what to answer.
func (c *conn) readRequest() error {
	limit := c.s.maxHeaderBytes() + 4096 // net/http's slack for the request line
	head, spans := c.head[:0], c.spans[:0]
	// RFC 9112 section 2.2: empty lines before the request line are
	// ignored (a few, for clients that add CRLF after a body).
	var line []byte
	for empty := 0; ; empty++ {
		var err error
		if line, err = c.readLine(&limit); err != nil {
			return err
		}
		if len(line) > 0 {
			break
		}
		if empty == 4 {
			return errBadRequest
		}
	}
	head = append(head, line...)
	reqLine := len(head)
	for {
		line, err := c.readLine(&limit)
		if err != nil {
			return h1wire.Unexpected(err)
		}
		if len(line) == 0 {
			break
		}
		if head, spans, err = h1wire.AppendField(head, spans, line); err != nil {
			return errBadRequest
		}
	}
	c.head, c.spans = head, spans

	// One string for the whole head: method, target and values are
	// pieces of it.
	all := string(head)
	method, rest, ok1 := strings.Cut(all[:reqLine], " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !h1wire.ValidToken(method) || target == "" || !h1wire.ValidTarget(target) {
		return errBadRequest
	}
	minor, ok := parseVersion(proto)
	if !ok {
		return errBadRequest
	}
	if minor < 0 {
		return errVersion
	}

	hdr := c.hdr
	clear(hdr)
	vals := slices.Grow(c.vals[:0], len(spans))[:len(spans)]
	c.vals = vals
	for i, s := range spans {
		k := c.canonicalKey(all, s)
		vals[i] = all[s.V0:s.V1]
		if prev, ok := hdr[k]; ok {
			hdr[k] = append(prev, vals[i])
		} else {
			hdr[k] = vals[i : i+1 : i+1]
		}
	}

	r := c.req
	u := &c.url
	*u = url.URL{}
	if target[0] == '/' && strings.IndexByte(target, '%') < 0 {
		path, query, _ := strings.Cut(target, "?")
		u.Path, u.RawQuery = path, query
		u.ForceQuery = query == "" && strings.HasSuffix(target, "?")
	} else {
		raw := target
		authority := method == http.MethodConnect && target[0] != '/'
		if authority {
			raw = "http://" + target
		}
		parsed, err := url.ParseRequestURI(raw)
		if err != nil {
			return errBadRequest
		}
		*u = *parsed
		if authority {
			u.Scheme = ""
		}
	}

	hosts, haveHost := hdr["Host"]
	switch {
	case len(hosts) > 1:
		return errBadRequest
	case minor >= 1 && len(hosts) == 0 && method != http.MethodConnect:
		return errBadRequest
	case len(hosts) == 1 && !httpguts.ValidHostHeader(hosts[0]):
		return errBadRequest
	}
	host := u.Host
	if host == "" && haveHost {
		host = hosts[0]
	}
	delete(hdr, "Host")

	// Message framing (RFC 9112 section 6), strict against smuggling.
	chunked := false
	if te, ok := hdr["Transfer-Encoding"]; ok {
		delete(hdr, "Transfer-Encoding")
		if minor >= 1 { // HTTP/1.0 has no transfer codings: ignored
			if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
				return errNotImpl
			}
			chunked = true
		}
	}
	var cl int64
	if cls := hdr["Content-Length"]; len(cls) > 0 {
		if chunked {
			return errBadRequest // both: Envoy refuses, so do we
		}
		n, ok := parseContentLength(cls)
		if !ok {
			return errBadRequest
		}
		if len(cls) > 1 {
			hdr["Content-Length"] = cls[:1]
		}
		cl = n
	}
	var trailer http.Header
	if decl, ok := hdr["Trailer"]; ok && chunked {
		trailer = http.Header{}
		for _, v := range decl {
			for _, k := range strings.Split(v, ",") {
				k = http.CanonicalHeaderKey(strings.TrimSpace(k))
				switch k {
				case "":
					continue
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return errBadRequest
				}
				trailer[k] = nil
			}
		}
		delete(hdr, "Trailer")
	}
	expectContinue := false
	if ex, ok := hdr["Expect"]; ok {
		if len(ex) == 1 && asciiEqualFold(ex[0], "100-continue") {
			expectContinue = minor >= 1 && (chunked || cl > 0)
		} else if len(ex) != 1 || ex[0] != "" {
			return errExpectFailed
		}
	}

	r.Method = method
	r.URL = u
	r.ProtoMajor, r.ProtoMinor = 1, minor
	r.Proto = "HTTP/1.1"
	if minor == 0 {
		r.Proto = "HTTP/1.0"
	}
	r.Header = hdr
	r.GetBody = nil
	r.TransferEncoding = nil
	r.Close = minor == 0 && !headerHasToken(hdr["Connection"], "keep-alive") ||
		minor >= 1 && headerHasToken(hdr["Connection"], "close")
	r.Host = host
	r.Form, r.PostForm, r.MultipartForm = nil, nil, nil
	r.Trailer = trailer
	r.RemoteAddr = c.remote
	r.RequestURI = target
	r.TLS = nil
	r.Cancel = nil //nolint:staticcheck // reset, never used
	r.Response = nil
	r.Pattern = ""
	switch {
	case chunked:
		c.body = &body{c: c, mode: bodyChunked, trailer: trailer, expect: expectContinue}
		r.Body, r.ContentLength, r.TransferEncoding = c.body, -1, chunkedTE
	case cl > 0:
		c.body = &body{c: c, mode: bodyFixed, left: cl, expect: expectContinue}
		r.Body, r.ContentLength = c.body, cl
	default:
		c.body = nil
		r.Body, r.ContentLength = http.NoBody, 0
		c.bodyEnded()
	}
	c.expectPending.Store(expectContinue)
	c.rw.reset(r)
	return nil
}

// readLine returns the next line without its ending (CRLF or LF), counting
// it against *limit; the slice is valid until the next read.
func (c *conn) readLine(limit *int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.long) > *limit {
				return nil, errTooLarge
			}
			line, err = c.br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	*limit -= len(line)
	if *limit < 0 {
		return nil, errTooLarge
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// canonicalKey returns the canonical form of the field name at s: the
// piece of all when it is canonical already, a shared string for common
// names, else a new string.
func (c *conn) canonicalKey(all string, s h1wire.Span) string {
	k := all[s.K0:s.K1]
	upper := true
	canonical := true
	for i := 0; i < len(k); i++ {
		b := k[i]
		if upper && 'a' <= b && b <= 'z' || !upper && 'A' <= b && b <= 'Z' {
			canonical = false
			break
		}
		upper = b == '-'
	}
	if canonical {
		return k
	}
	buf := append(c.canon[:0], k...)
	upper = true
	for i, b := range buf {
		if upper && 'a' <= b && b <= 'z' {
			buf[i] = b - ('a' - 'A')
		} else if !upper && 'A' <= b && b <= 'Z' {
			buf[i] = b + ('a' - 'A')
		}
		upper = b == '-'
	}
	c.canon = buf
	if v, ok := commonHeader[string(buf)]; ok {
		return v
	}
	return string(buf)
}

// commonHeader interns canonical names that clients send in lower case
// (HTTP/2-minded clients, wrk, curl scripts).
var commonHeader = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Encoding", "Content-Length", "Content-Type", "Cookie",
		"Expect", "Grpc-Timeout", "Host", "If-Modified-Since", "If-None-Match", "Origin",
		"Referer", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id", "X-B3-Traceid",
		"X-B3-Spanid", "X-B3-Parentspanid", "X-B3-Sampled", "Traceparent", "Tracestate",
		"Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Protocol",
		"Sec-Websocket-Extensions", "Keep-Alive", "Proxy-Connection", "Range", "Pragma",
	} {
		m[k] = k
	}
	return m
}()

// parseVersion parses "HTTP/1.x": the minor version, or -1 for a
// well-formed version other than 1.x (505).
func parseVersion(p string) (int, bool) {
	if len(p) != 8 || p[:5] != "HTTP/" || p[6] != '.' || !isDigit(p[5]) || !isDigit(p[7]) {
		return 0, false
	}
	if p[5] != '1' {
		return -1, true
	}
	return int(p[7] - '0'), true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// parseContentLength accepts one or more equal decimal values.
func parseContentLength(vs []string) (int64, bool) {
	n := int64(-1)
	for _, v := range vs {
		v = strings.TrimSpace(v)
		if v == "" || len(v) > 18 {
			return 0, false
		}
		var m int64
		for i := 0; i < len(v); i++ {
			if !isDigit(v[i]) {
				return 0, false
			}
			m = m*10 + int64(v[i]-'0')
		}
		if n >= 0 && m != n {
			return 0, false
		}
		n = m
	}
	return n, n >= 0
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// headerHasToken reports whether a comma-separated header lists token
// (case-insensitive).
func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var t string
			t, v, _ = strings.Cut(v, ",")
			if asciiEqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}
