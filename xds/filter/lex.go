package filter

import (
	"fmt"
	"strings"
	"unicode"
)

type tokenKind int

const (
	tokEOF    tokenKind = iota
	tokWord             // bare identifier, selector path or number
	tokString           // quoted value
	tokEq               // ==
	tokNe               // !=
	tokLParen
	tokRParen
)

type token struct {
	kind tokenKind
	text string
	pos  int // byte offset, for errors
}

// lex splits an expression into tokens.
func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			out = append(out, token{kind: tokLParen, text: "(", pos: i})
			i++
		case c == ')':
			out = append(out, token{kind: tokRParen, text: ")", pos: i})
			i++
		case c == '=' || c == '!':
			if i+1 >= len(s) || s[i+1] != '=' {
				return nil, fmt.Errorf("position %d: unexpected %q", i, c)
			}
			kind := tokEq
			if c == '!' {
				kind = tokNe
			}
			out = append(out, token{kind: kind, text: s[i : i+2], pos: i})
			i += 2
		case c == '"':
			v, n, err := lexDoubleQuoted(s[i:])
			if err != nil {
				return nil, fmt.Errorf("position %d: %w", i, err)
			}
			out = append(out, token{kind: tokString, text: v, pos: i})
			i += n
		case c == '`':
			end := strings.IndexByte(s[i+1:], '`')
			if end < 0 {
				return nil, fmt.Errorf("position %d: unterminated `string`", i)
			}
			out = append(out, token{kind: tokString, text: s[i+1 : i+1+end], pos: i})
			i += end + 2
		case isWordByte(c):
			start := i
			for i < len(s) && isWordByte(s[i]) {
				i++
			}
			out = append(out, token{kind: tokWord, text: s[start:i], pos: start})
		default:
			return nil, fmt.Errorf("position %d: unexpected %q", i, rune(c))
		}
	}
	return append(out, token{kind: tokEOF, pos: len(s)}), nil
}

// isWordByte accepts what bexpr allows in selectors and bare values:
// letters, digits, '_', '-', '.', '/', ':' (ASCII only).
func isWordByte(c byte) bool {
	if c >= 0x80 {
		return false
	}
	r := rune(c)
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-./:", r)
}

// lexDoubleQuoted reads a "..." string with \" and \\ escapes, returning
// the value and the bytes consumed.
func lexDoubleQuoted(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 >= len(s) {
				return "", 0, fmt.Errorf("unterminated string")
			}
			i++
			switch s[i] {
			case '"', '\\':
				b.WriteByte(s[i])
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				// Keep unknown escapes as written (regexes use them).
				b.WriteByte('\\')
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), i + 1, nil
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}
