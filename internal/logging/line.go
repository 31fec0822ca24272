package logging

import (
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// LineCore is the core of every JSON logger made here: zap's JSON core,
// which also takes lines a caller encoded itself (AppendHead, then the
// caller's fields, then WriteLine). Package sidecar/accesslog writes its
// fixed line per request this way instead of through zap's field
// encoding (issue 8: zap's encoding of the line was about 5 % of the
// sidecar's CPU). Such a line is byte for byte what zap would write for
// the same entry and fields.
type LineCore struct {
	zapcore.Core
	out zapcore.WriteSyncer
	// context is the fields added by With, encoded as zap's JSON encoder
	// encodes them (`"k":v,"k2":v2`, no braces).
	context []byte
	// raw is false once a With field opened a namespace: later fields
	// would belong inside it, so only zap can encode the line.
	raw    bool
	cfg    zapcore.EncoderConfig
	ending string // the encoder's line ending
}

func newLineCore(enc zapcore.EncoderConfig, out zapcore.WriteSyncer, lvl zapcore.LevelEnabler) *LineCore {
	ending := enc.LineEnding
	if ending == "" {
		ending = zapcore.DefaultLineEnding
	}
	if enc.SkipLineEnding {
		ending = ""
	}
	return &LineCore{Core: zapcore.NewCore(zapcore.NewJSONEncoder(enc), out, lvl), out: out, raw: true, cfg: enc, ending: ending}
}

// With is zap's With, keeping the fields' encoding for AppendHead.
func (c *LineCore) With(fields []zapcore.Field) zapcore.Core {
	n := &LineCore{Core: c.Core.With(fields), out: c.out, raw: c.raw, cfg: c.cfg, ending: c.ending, context: c.context}
	if !n.raw || len(fields) == 0 {
		return n
	}
	for _, f := range fields {
		if f.Type == zapcore.NamespaceType {
			n.raw = false
			return n
		}
	}
	// The fields as zap encodes them: an encoder with no entry keys writes
	// `{fields}` and a line ending.
	cfg := c.cfg
	cfg.LevelKey, cfg.TimeKey, cfg.NameKey, cfg.CallerKey, cfg.FunctionKey, cfg.MessageKey, cfg.StacktraceKey = "", "", "", "", "", "", ""
	buf, err := zapcore.NewJSONEncoder(cfg).EncodeEntry(zapcore.Entry{}, fields)
	if err != nil {
		n.raw = false
		return n
	}
	b := buf.Bytes()
	b = b[1 : len(b)-1-len(c.ending)] // drop "{" and "}\n"
	ctx := make([]byte, 0, len(c.context)+1+len(b))
	ctx = append(ctx, c.context...)
	if len(ctx) > 0 && len(b) > 0 {
		ctx = append(ctx, ',')
	}
	n.context = append(ctx, b...)
	buf.Free()
	return n
}

// CanAppend reports whether lines may be written with AppendHead and
// WriteLine (false if a With field opened a namespace).
func (c *LineCore) CanAppend() bool { return c.raw }

// AppendHead appends the start of a line as zap's JSON encoder would
// write it for an entry at lvl and t from the logger named name, with no
// caller: `{"level":..,"time":..,"logger":..,"msg":..` and the context
// fields. The caller appends `,"key":value` for each field, then calls
// WriteLine, which closes the line.
func (c *LineCore) AppendHead(b []byte, lvl zapcore.Level, t time.Time, name, msg string) []byte {
	b = append(b, '{')
	b = append(b, `"level":"`...)
	b = append(b, lvl.String()...)
	b = append(b, `","time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if name != "" {
		b = append(b, `,"logger":`...)
		b = AppendJSONString(b, name)
	}
	b = append(b, `,"msg":`...)
	b = AppendJSONString(b, msg)
	if len(c.context) > 0 {
		b = append(b, ',')
		b = append(b, c.context...)
	}
	return b
}

// WriteLine closes a line begun with AppendHead and writes it (one Write
// on the core's writer, as zap does). b is not kept.
func (c *LineCore) WriteLine(b []byte) error {
	b = append(b, '}')
	b = append(b, c.ending...)
	_, err := c.out.Write(b)
	return err
}

// AppendJSONString appends s as a quoted JSON string, escaped as zap's
// JSON encoder escapes it: `"` and `\` backslashed; \n, \r and \t as such;
// other bytes below 0x20 as \u00XX; invalid UTF-8 as \ufffd; everything
// else (HTML characters included) as is.
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if !special[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			b = append(b, s[last:i]...)
			b = append(b, `\ufffd`...)
			i++
			last = i
			continue
		}
		b = append(b, s[last:i]...)
		switch c {
		case '\\', '"':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		last = i
	}
	b = append(b, s[last:]...)
	return append(b, '"')
}

const hex = "0123456789abcdef"

// special marks the bytes AppendJSONString looks at twice: those it
// escapes and those that start a multi-byte (or invalid) UTF-8 sequence.
var special = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf
	}
	return t
}()
