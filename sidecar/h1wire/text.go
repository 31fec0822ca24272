package h1wire

// Text is what the validators take: the bytes off the wire, or the
// strings of an http.Header about to be written.
type Text interface{ ~string | ~[]byte }

// tokenChar: RFC 9110 section 5.6.2 tchar.
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsTokenChar reports whether c is an RFC 9110 tchar.
func IsTokenChar(c byte) bool { return tokenChar[c] }

// ValidToken reports whether s is a non-empty token (RFC 9110 section
// 5.6.2): a method or a field name.
func ValidToken[T Text](s T) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

// ValidFieldValue: no control characters but HTAB (RFC 9110 section 5.5:
// CR, LF and NUL must be rejected; net/http rejects every CTL).
func ValidFieldValue[T Text](s T) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ValidTarget: no space or control character in a request-target
// (url.Parse refuses control characters as well).
func ValidTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// TrimOWS trims optional whitespace (SP and HTAB, RFC 9110 section 5.6.3)
// from both ends.
func TrimOWS[T Text](s T) T {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
