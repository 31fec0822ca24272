package cluster

import (
	"iter"
	"strings"

	"github.com/seed-a778acb4/consulate/sidecar/h1wire"
)

// hostByte: net/http's httpguts.ValidHostHeader set: tchar (RFC 9110
// section 5.6.2) for reg-name, and IP literals, port, and a few more
// seen in the wild.
var hostByte = func() (t [256]bool) {
	for i := range t {
		t[i] = h1wire.IsTokenChar(byte(i))
	}
	for _, c := range "()+,/:;=@[]" {
		t[c] = true
	}
	return t
}()

func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

// splitTokens yields the comma-separated elements of a list header value,
// trimmed, skipping empty ones.
func splitTokens(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = h1wire.TrimOWS(tok); tok != "" && !yield(tok) {
				return
			}
		}
	}
}

func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for tok := range splitTokens(v) {
			if strings.EqualFold(tok, token) {
				return true
			}
		}
	}
	return false
}

func asciiEqualFold(a, b string) bool { return strings.EqualFold(a, b) }
