package cluster

import (
	"bytes"
	"iter"
	"strings"
)

// Byte classes of RFC 9110 section 5.6.2 (tchar) and 5.5 (field values).
var (
	tokenByte [256]bool
	hostByte  [256]bool
)

func init() {
	for c := '0'; c <= '9'; c++ {
		tokenByte[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		tokenByte[c] = true
		tokenByte[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		tokenByte[c] = true
	}
	// net/http's httpguts.ValidHostHeader set: reg-name, IP literals,
	// port, and a few more seen in the wild.
	for i, ok := range tokenByte {
		hostByte[i] = ok
	}
	for _, c := range "()+,/:;=@[]" {
		hostByte[c] = true
	}
}

type text interface{ ~string | ~[]byte }

func validFieldName[T text](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

func validFieldNameString(s string) bool { return validFieldName(s) }

// validFieldValue: no control characters but HTAB (RFC 9110 section 5.5:
// CR, LF and NUL must be rejected; net/http rejects every CTL).
func validFieldValue[T text](s T) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validFieldValueString(s string) bool { return validFieldValue(s) }

// validTarget: no space or control character in the request-target.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		if !hostByte[s[i]] {
			return false
		}
	}
	return true
}

func trimOWS[T text](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

func bytesIndexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }

// splitTokens yields the comma-separated elements of a list header value,
// trimmed, skipping empty ones.
func splitTokens(v string) iter.Seq[string] {
	return func(yield func(string) bool) {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = trimOWS(tok); tok != "" && !yield(tok) {
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
