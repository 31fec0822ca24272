package logging

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// tricky are strings whose JSON escaping differs between encoders.
var tricky = []string{
	"", "plain", `quote " and \ backslash`, "new\nline\r\ttab", "\x00\x01\x1f\x7f", "<html>&'",
	"é ü 日本 🙂", "\u2028\u2029", "bad \xff utf8 \xe2\x82", "\xed\xa0\x80 surrogate", "/p?q=1&r=%20",
}

func TestAppendJSONStringIsZaps(t *testing.T) {
	for _, s := range tricky {
		var zapped bytes.Buffer
		zl, err := NewWriter("info", "json", &zapped)
		if err != nil {
			t.Fatal(err)
		}
		// The wrapper hides the LineCore: zap's own encoder writes.
		zl = zl.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return struct{ zapcore.Core }{c} }))
		zl.Info("m", zap.String("k", s))
		want := zapped.String()
		want = want[strings.Index(want, `"k":`)+4 : len(want)-2]
		if got := string(AppendJSONString(nil, s)); got != want {
			t.Errorf("AppendJSONString(%q) = %s, zap writes %s", s, got, want)
		}
		var back string
		if err := json.Unmarshal(AppendJSONString(nil, s), &back); err != nil {
			t.Errorf("AppendJSONString(%q) is not JSON: %v", s, err)
		}
	}
}

var timeField = regexp.MustCompile(`"time":"[^"]*"`)

// TestAppendHeadIsZaps writes the same entry through zap and by hand, with
// context fields from two With calls and a logger name.
func TestAppendHeadIsZaps(t *testing.T) {
	var out bytes.Buffer
	log, err := NewWriter("info", "json", &out)
	if err != nil {
		t.Fatal(err)
	}
	log = log.With(zap.String("proxy_id", `web "1"`), zap.Int("n", 3)).With(zap.Duration("d", 1500*time.Microsecond)).Named("a").Named("b")
	c, ok := log.Core().(*LineCore)
	if !ok || !c.CanAppend() {
		t.Fatalf("core %T does not take lines", log.Core())
	}
	hidden := log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return struct{ zapcore.Core }{c} }))
	hidden.Info("msg \"x\"", zap.String("f", "v"))
	want := out.String()
	out.Reset()
	before := time.Now()
	b := c.AppendHead(nil, zapcore.InfoLevel, time.Now(), log.Name(), "msg \"x\"")
	b = append(b, `,"f":"v"`...)
	if err := c.WriteLine(b); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if a, b := timeField.ReplaceAllString(got, `"time":""`), timeField.ReplaceAllString(want, `"time":""`); a != b {
		t.Errorf("hand-written line\n%s differs from zap's\n%s", got, want)
	}
	var line struct{ Time time.Time }
	if err := json.Unmarshal([]byte(got), &line); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	if line.Time.Before(before.Add(-time.Second)) || line.Time.After(time.Now()) {
		t.Errorf("time %v, want about %v", line.Time, before)
	}
}

func TestNamespaceStopsLines(t *testing.T) {
	log, err := NewWriter("info", "json", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c := log.With(zap.Namespace("ns"), zap.String("k", "v")).Core().(*LineCore); c.CanAppend() {
		t.Error("a core with an open namespace takes hand-written lines: its fields would land outside the namespace")
	}
	if c := log.With(zap.String("k", "v")).Core().(*LineCore); !c.CanAppend() {
		t.Error("a core with plain context fields does not take lines")
	}
	if _, ok := mustConsole(t).Core().(*LineCore); ok {
		t.Error("the console format's core takes JSON lines")
	}
}

func mustConsole(t *testing.T) *zap.Logger {
	t.Helper()
	log, err := NewWriter("info", "console", &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return log
}
