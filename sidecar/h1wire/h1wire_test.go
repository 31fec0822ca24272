package h1wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The server's and the client's suites exercise these through whole
// messages; these tables pin the edges both sides rely on.

func TestParseChunkSize(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       int64
		ok         bool
	}{
		{name: "hex", line: "1aF", want: 0x1af, ok: true},
		{name: "zero", line: "0", want: 0, ok: true},
		{name: "extension", line: "10;name=value", want: 16, ok: true},
		{name: "whitespace", line: " \t8 \t;x", want: 8, ok: true},
		{name: "fifteen digits", line: "7fffffffffffffff"[1:], want: 0xfffffffffffffff, ok: true},
		{name: "sixteen digits", line: "7fffffffffffffff"},
		{name: "empty", line: ""},
		{name: "only extension", line: ";x"},
		{name: "sign", line: "+5"},
		{name: "0x", line: "0x5"},
		{name: "inner space", line: "1 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ParseChunkSize([]byte(tc.line))
			if ok != tc.ok || ok && got != tc.want {
				t.Errorf("ParseChunkSize(%q) = %d, %v, want %d, %v", tc.line, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestAppendSplitField(t *testing.T) {
	for _, tc := range []struct {
		name    string
		line    string
		wantErr error
		k, v    string
	}{
		{name: "plain", line: "Content-Type: text/plain", k: "Content-Type", v: "text/plain"},
		{name: "OWS", line: "x-a:\t a b \t", k: "x-a", v: "a b"},
		{name: "empty value", line: "X:", k: "X", v: ""},
		{name: "no colon", line: "X-A value", wantErr: ErrFieldName},
		{name: "empty name", line: ": v", wantErr: ErrFieldName},
		{name: "space before colon", line: "X-A : v", wantErr: ErrFieldName},
		{name: "obsolete folding", line: " folded: v", wantErr: ErrFieldName},
		{name: "CR in value", line: "X-A: a\rb", wantErr: ErrFieldValue},
		{name: "DEL in value", line: "X-A: a\x7f", wantErr: ErrFieldValue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := []byte("GET / HTTP/1.1")
			spans := []Span{{}}
			head, spans, err := AppendField(head, spans, []byte(tc.line))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			// SplitField (the server's trailers) checks as AppendField does.
			name, value, splitErr := SplitField([]byte(tc.line))
			if splitErr != err || err == nil && (string(name) != tc.k || string(value) != tc.v) {
				t.Errorf("SplitField = %q, %q, %v; want %q, %q, %v", name, value, splitErr, tc.k, tc.v, err)
			}
			if err != nil {
				if len(spans) != 1 || string(head) != "GET / HTTP/1.1" {
					t.Errorf("failed line appended: %q %v", head, spans)
				}
				return
			}
			s := spans[len(spans)-1]
			got := []string{string(head[s.K0:s.K1]), string(head[s.V0:s.V1])}
			if diff := cmp.Diff([]string{tc.k, tc.v}, got); diff != "" {
				t.Errorf("field (-want +got):\n%s", diff)
			}
			if s.K1 != s.V0 || int(s.V1) != len(head) {
				t.Errorf("span %+v not contiguous at the end of %d bytes", s, len(head))
			}
		})
	}
}

func TestReadData(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("abcdef"))
	left := int64(4)
	p := make([]byte, 10)
	n, err := ReadData(br, p, &left)
	if n != 4 || err != nil || left != 0 || string(p[:n]) != "abcd" {
		t.Fatalf("ReadData = %d %v, left %d, %q; want 4 bytes, 0 left", n, err, left, p[:n])
	}
	left = 10
	n, _ = ReadData(br, p, &left)
	if n != 2 || left != 8 {
		t.Fatalf("ReadData = %d, left %d; want 2, 8", n, left)
	}
	if _, err := ReadData(br, p, &left); Unexpected(err) != io.ErrUnexpectedEOF {
		t.Errorf("at the end: Unexpected(%v), want io.ErrUnexpectedEOF", err)
	}
}

func TestValidators(t *testing.T) {
	if !ValidToken("GET") || ValidToken("") || ValidToken([]byte("a b")) || ValidToken("a:") {
		t.Error("ValidToken")
	}
	if !ValidFieldValue("a\tb ~") || ValidFieldValue([]byte("a\nb")) || ValidFieldValue("\x00") {
		t.Error("ValidFieldValue")
	}
	if !ValidTarget("/a?b=c") || ValidTarget("/a b") || ValidTarget("/\x7f") {
		t.Error("ValidTarget")
	}
	if got := TrimOWS(" \ta b\t "); got != "a b" {
		t.Errorf("TrimOWS = %q", got)
	}
}
