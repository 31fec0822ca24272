package decode

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	pgv "github.com/envoyproxy/protoc-gen-validate/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// validate checks m against the protoc-gen-validate rules of its .proto
// files (the `validate.rules` field options, `validate.required` on oneofs,
// `validate.disabled` on messages), read from the descriptors: the same
// rules the generated Validate methods check, with the same semantics.
//
// Why not call the generated Validate (issue 8): any call of it through an
// interface keeps every Envoy message's Validate, ValidateAll and error
// types in the binary — 5.7 MiB of the sidecar's 27, most of it touched
// at start-up (RssFile). The rules themselves are in the descriptors,
// which are linked anyway; rulesSupported lists what is interpreted, and a
// test walks every message the decoder accepts to prove no other rule is
// in use.
func validate(m proto.Message) error {
	if err := validateMessage(m.ProtoReflect()); err != nil {
		return fmt.Errorf("invalid: %s.%w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// ruleError is a broken rule and where, e.g.
// VirtualHosts[0].Routes[2].Match.Prefix: the path is built while the
// error returns, so a valid message costs no allocation for it.
type ruleError struct {
	path   string
	reason error
}

func (e *ruleError) Error() string { return e.path + ": " + e.reason.Error() }
func (e *ruleError) Unwrap() error { return e.reason }

// at puts err (from the value at name, or within it) under name.
func at(name string, err error) error {
	if re, ok := err.(*ruleError); ok {
		if strings.HasPrefix(re.path, "[") {
			re.path = name + re.path
		} else {
			re.path = name + "." + re.path
		}
		return re
	}
	return &ruleError{path: name, reason: err}
}

// plan is a message's rules, compiled once per message type.
type plan struct {
	disabled bool
	oneofs   []protoreflect.OneofDescriptor // validate.required
	fields   []fieldPlan
}

type fieldPlan struct {
	fd    protoreflect.FieldDescriptor
	name  string // the Go field name, as the generated code's errors say
	rules *pgv.FieldRules
	re    *regexp.Regexp // string or bytes pattern
	// items, keys and values: repeated and map element rules.
	items, keys, values *elemPlan
}

type elemPlan struct {
	rules *pgv.FieldRules
	re    *regexp.Regexp
}

var plans sync.Map // protoreflect.FullName → *plan

func planFor(md protoreflect.MessageDescriptor) *plan {
	if p, ok := plans.Load(md.FullName()); ok {
		return p.(*plan)
	}
	p := &plan{}
	opts := md.Options()
	if proto.GetExtension(opts, pgv.E_Disabled).(bool) || proto.GetExtension(opts, pgv.E_Ignored).(bool) {
		p.disabled = true
	}
	for i := range md.Oneofs().Len() {
		od := md.Oneofs().Get(i)
		if proto.GetExtension(od.Options(), pgv.E_Required).(bool) {
			p.oneofs = append(p.oneofs, od)
		}
	}
	for i := range md.Fields().Len() {
		fd := md.Fields().Get(i)
		r, _ := proto.GetExtension(fd.Options(), pgv.E_Rules).(*pgv.FieldRules)
		if r == nil && fd.Message() == nil {
			continue
		}
		fp := fieldPlan{fd: fd, name: goName(fd.Name()), rules: r}
		if r != nil {
			fp.re = pattern(r)
			if rr := r.GetRepeated().GetItems(); rr != nil {
				fp.items = &elemPlan{rules: rr, re: pattern(rr)}
			}
			if mr := r.GetMap(); mr != nil {
				if k := mr.GetKeys(); k != nil {
					fp.keys = &elemPlan{rules: k, re: pattern(k)}
				}
				if v := mr.GetValues(); v != nil {
					fp.values = &elemPlan{rules: v, re: pattern(v)}
				}
			}
		}
		p.fields = append(p.fields, fp)
	}
	got, _ := plans.LoadOrStore(md.FullName(), p)
	return got.(*plan)
}

// pattern compiles a string or bytes pattern rule. The generated code
// compiles it at init (a bad pattern panics there); so does this, at first
// use of the message type.
func pattern(r *pgv.FieldRules) *regexp.Regexp {
	if s := r.GetString_(); s != nil && s.Pattern != nil {
		return regexp.MustCompile(s.GetPattern())
	}
	if b := r.GetBytes(); b != nil && b.Pattern != nil {
		return regexp.MustCompile(b.GetPattern())
	}
	return nil
}

// goName is the generated Go field name (protoc-gen-go's GoCamelCase for
// the usual snake_case names), as protoc-gen-validate's errors name
// fields.
func goName(n protoreflect.Name) string {
	var b strings.Builder
	up := true
	for _, c := range string(n) {
		switch {
		case c == '_':
			up = true
			continue
		case up && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		up = false
		b.WriteRune(c)
	}
	return b.String()
}

func validateMessage(m protoreflect.Message) error {
	p := planFor(m.Descriptor())
	if p.disabled {
		return nil
	}
	for _, od := range p.oneofs {
		if m.WhichOneof(od) == nil {
			return &ruleError{path: goName(od.Name()), reason: errRequired}
		}
	}
	for i := range p.fields {
		f := &p.fields[i]
		if err := f.check(m); err != nil {
			return at(f.name, err)
		}
	}
	return nil
}

// check returns the broken rule of the field, or of a value in it (a
// ruleError with the path from the field's value on, e.g. "[2].Name").
func (f *fieldPlan) check(m protoreflect.Message) error {
	fd, r := f.fd, f.rules
	switch {
	case fd.IsList():
		if !m.Has(fd) { // empty (Get would allocate a view of it)
			if rr := r.GetRepeated(); rr != nil && !rr.GetIgnoreEmpty() {
				return checkCount(0, rr.MinItems, rr.MaxItems, "item(s)")
			}
			return nil
		}
		l := m.Get(fd).List()
		if rr := r.GetRepeated(); rr != nil && !(rr.GetIgnoreEmpty() && l.Len() == 0) {
			if err := checkCount(l.Len(), rr.MinItems, rr.MaxItems, "item(s)"); err != nil {
				return err
			}
			if rr.GetUnique() && !uniqueList(l) {
				return errors.New("repeated value must contain unique items")
			}
		}
		for i := range l.Len() {
			if f.items != nil {
				if err := checkValue(fd, l.Get(i), f.items.rules, f.items.re); err != nil {
					return &ruleError{path: "[" + strconv.Itoa(i) + "]", reason: err}
				}
			}
			if fd.Message() != nil && !f.items.skip() {
				if err := validateMessage(l.Get(i).Message()); err != nil {
					return at("["+strconv.Itoa(i)+"]", err)
				}
			}
		}
		return nil
	case fd.IsMap():
		if !m.Has(fd) {
			if mr := r.GetMap(); mr != nil && !mr.GetIgnoreEmpty() {
				return checkCount(0, mr.MinPairs, mr.MaxPairs, "pair(s)")
			}
			return nil
		}
		mp := m.Get(fd).Map()
		if mr := r.GetMap(); mr != nil && !(mr.GetIgnoreEmpty() && mp.Len() == 0) {
			if err := checkCount(mp.Len(), mr.MinPairs, mr.MaxPairs, "pair(s)"); err != nil {
				return err
			}
		}
		var err error
		mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
			p := fmt.Sprintf("[%v]", k.Interface())
			if f.keys != nil {
				if err = checkValue(fd.MapKey(), k.Value(), f.keys.rules, f.keys.re); err != nil {
					err = &ruleError{path: p, reason: err}
					return false
				}
			}
			if f.values != nil {
				if err = checkValue(fd.MapValue(), v, f.values.rules, f.values.re); err != nil {
					err = &ruleError{path: p, reason: err}
					return false
				}
			}
			if fd.MapValue().Message() != nil && !f.values.skip() {
				if err = validateMessage(v.Message()); err != nil {
					err = at(p, err)
				}
			}
			return err == nil
		})
		return err
	case fd.Message() != nil:
		if !m.Has(fd) {
			if fd.ContainingOneof() != nil {
				return nil // another case of the oneof (or none) is set
			}
			if r.GetMessage().GetRequired() || r.GetDuration().GetRequired() || r.GetTimestamp().GetRequired() || r.GetAny().GetRequired() {
				return errRequired
			}
			return nil
		}
		if r != nil {
			if err := checkValue(fd, m.Get(fd), r, f.re); err != nil {
				return err
			}
		}
		if r.GetMessage().GetSkip() {
			return nil
		}
		return validateMessage(m.Get(fd).Message())
	}
	// A scalar: a oneof case or an explicitly present field is checked only
	// when set (as the generated code does); a plain proto3 scalar always.
	if fd.HasPresence() && !m.Has(fd) {
		return nil
	}
	return checkValue(fd, m.Get(fd), r, f.re)
}

func (e *elemPlan) skip() bool { return e != nil && e.rules.GetMessage().GetSkip() }

var errRequired = errors.New("value is required")

func checkCount(n int, lo, hi *uint64, what string) error {
	switch {
	case lo != nil && uint64(n) < *lo:
		return fmt.Errorf("value must contain at least %d %s", *lo, what)
	case hi != nil && uint64(n) > *hi:
		return fmt.Errorf("value must contain no more than %d %s", *hi, what)
	}
	return nil
}

func uniqueList(l protoreflect.List) bool {
	seen := make(map[any]bool, l.Len())
	for i := range l.Len() {
		k := l.Get(i).Interface()
		if b, ok := k.([]byte); ok {
			k = string(b)
		}
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// checkValue applies r to one value of fd's kind (a field, a list item, a
// map key or value). Wrapper messages (google.protobuf.UInt32Value, ...)
// take their scalar's rules.
func checkValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, r *pgv.FieldRules, re *regexp.Regexp) error {
	var err error
	switch t := r.GetType().(type) {
	case nil:
		return nil
	case *pgv.FieldRules_Repeated, *pgv.FieldRules_Map:
		return nil // handled by the caller
	case *pgv.FieldRules_Duration:
		d := v.Message().Interface().(*durationpb.Duration)
		err = checkDuration(d, t.Duration)
	case *pgv.FieldRules_Timestamp:
		ts := v.Message().Interface().(*timestamppb.Timestamp)
		err = checkTimestamp(ts, t.Timestamp)
	case *pgv.FieldRules_Any:
		err = checkAny(v.Message(), t.Any)
	default:
		if fd.Message() != nil { // a wrapper: its value field
			inner := fd.Message().Fields().ByName("value")
			if inner == nil {
				return nil
			}
			fd, v = inner, v.Message().Get(inner)
		}
		err = checkScalar(fd, v, r, re)
	}
	return err
}

func checkScalar(fd protoreflect.FieldDescriptor, v protoreflect.Value, r *pgv.FieldRules, re *regexp.Regexp) error {
	switch t := r.GetType().(type) {
	case *pgv.FieldRules_Float:
		x := t.Float
		return checkNum(float32(v.Float()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Double:
		x := t.Double
		return checkNum(v.Float(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Int32:
		x := t.Int32
		return checkNum(int32(v.Int()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Int64:
		x := t.Int64
		return checkNum(v.Int(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Sint32:
		x := t.Sint32
		return checkNum(int32(v.Int()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Sint64:
		x := t.Sint64
		return checkNum(v.Int(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Sfixed32:
		x := t.Sfixed32
		return checkNum(int32(v.Int()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Sfixed64:
		x := t.Sfixed64
		return checkNum(v.Int(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Uint32:
		x := t.Uint32
		return checkNum(uint32(v.Uint()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Uint64:
		x := t.Uint64
		return checkNum(v.Uint(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Fixed32:
		x := t.Fixed32
		return checkNum(uint32(v.Uint()), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Fixed64:
		x := t.Fixed64
		return checkNum(v.Uint(), x.Const, x.Lt, x.Lte, x.Gt, x.Gte, x.In, x.NotIn, x.GetIgnoreEmpty())
	case *pgv.FieldRules_Bool:
		if t.Bool.Const != nil && v.Bool() != t.Bool.GetConst() {
			return fmt.Errorf("value must equal %t", t.Bool.GetConst())
		}
	case *pgv.FieldRules_String_:
		return checkString(v.String(), t.String_, re)
	case *pgv.FieldRules_Bytes:
		return checkBytes(v.Bytes(), t.Bytes, re)
	case *pgv.FieldRules_Enum:
		x, n := t.Enum, v.Enum()
		switch {
		case x.Const != nil && int32(n) != x.GetConst():
			return fmt.Errorf("value must equal %d", x.GetConst())
		case x.GetDefinedOnly() && fd.Enum() != nil && fd.Enum().Values().ByNumber(n) == nil:
			return fmt.Errorf("value must be one of the defined enum values")
		case len(x.In) > 0 && !slices.Contains(x.In, int32(n)):
			return fmt.Errorf("value must be in list %v", x.In)
		case slices.Contains(x.NotIn, int32(n)):
			return fmt.Errorf("value must not be in list %v", x.NotIn)
		}
	}
	return nil
}

// checkNum is protoc-gen-validate's numeric rules: const, a bound on each
// side (gt/gte, lt/lte; when the lower bound is above the upper one the
// value must lie outside the range instead of inside), in, not_in.
func checkNum[T cmp.Ordered](v T, cnst, lt, lte, gt, gte *T, in, notIn []T, ignoreEmpty bool) error {
	var zero T
	if ignoreEmpty && v == zero {
		return nil
	}
	if cnst != nil && v != *cnst {
		return fmt.Errorf("value must equal %v", *cnst)
	}
	if err := checkRange(v, lt, lte, gt, gte); err != nil {
		return err
	}
	if len(in) > 0 && !slices.Contains(in, v) {
		return fmt.Errorf("value must be in list %v", in)
	}
	if slices.Contains(notIn, v) {
		return fmt.Errorf("value must not be in list %v", notIn)
	}
	return nil
}

func checkRange[T cmp.Ordered](v T, lt, lte, gt, gte *T) error {
	var lo, hi *T
	loIncl, hiIncl := false, false
	switch {
	case gt != nil:
		lo = gt
	case gte != nil:
		lo, loIncl = gte, true
	}
	switch {
	case lt != nil:
		hi = lt
	case lte != nil:
		hi, hiIncl = lte, true
	}
	above := lo == nil || v > *lo || loIncl && v == *lo
	below := hi == nil || v < *hi || hiIncl && v == *hi
	if lo != nil && hi != nil {
		inside := *hi > *lo || loIncl && hiIncl && *hi == *lo
		if inside && (!above || !below) {
			return fmt.Errorf("value must be inside range %s%v, %v%s", bracket(loIncl, "[", "("), *lo, *hi, bracket(hiIncl, "]", ")"))
		}
		if !inside && !above && !below {
			return fmt.Errorf("value must be outside range %s%v, %v%s", bracket(hiIncl, "(", "["), *hi, *lo, bracket(loIncl, ")", "]"))
		}
		return nil
	}
	switch {
	case !above && loIncl:
		return fmt.Errorf("value must be greater than or equal to %v", *lo)
	case !above:
		return fmt.Errorf("value must be greater than %v", *lo)
	case !below && hiIncl:
		return fmt.Errorf("value must be less than or equal to %v", *hi)
	case !below:
		return fmt.Errorf("value must be less than %v", *hi)
	}
	return nil
}

func bracket(incl bool, yes, no string) string {
	if incl {
		return yes
	}
	return no
}

// The HTTP header patterns of protoc-gen-validate's well_known_regex.
var (
	headerName   = regexp.MustCompile("^:?[0-9a-zA-Z!#$%&'*+-.^_|~\x60]+$")
	headerValue  = regexp.MustCompile("^[^\u0000-\u0008\u000A-\u001F\u007F]*$")
	headerLoose  = regexp.MustCompile("^[^\u0000\u000A\u000D]*$")
	errNotHeader = "value does not match regex pattern %q"
)

func checkString(s string, x *pgv.StringRules, re *regexp.Regexp) error {
	if x.GetIgnoreEmpty() && s == "" {
		return nil
	}
	runes := utf8.RuneCountInString(s)
	switch {
	case x.Const != nil && s != x.GetConst():
		return fmt.Errorf("value must equal %q", x.GetConst())
	case x.Len != nil && uint64(runes) != x.GetLen():
		return fmt.Errorf("value length must be %d runes", x.GetLen())
	case x.MinLen != nil && uint64(runes) < x.GetMinLen():
		return fmt.Errorf("value length must be at least %d runes", x.GetMinLen())
	case x.MaxLen != nil && uint64(runes) > x.GetMaxLen():
		return fmt.Errorf("value length must be at most %d runes", x.GetMaxLen())
	case x.LenBytes != nil && uint64(len(s)) != x.GetLenBytes():
		return fmt.Errorf("value length must be %d bytes", x.GetLenBytes())
	case x.MinBytes != nil && uint64(len(s)) < x.GetMinBytes():
		return fmt.Errorf("value length must be at least %d bytes", x.GetMinBytes())
	case x.MaxBytes != nil && uint64(len(s)) > x.GetMaxBytes():
		return fmt.Errorf("value length must be at most %d bytes", x.GetMaxBytes())
	case re != nil && !re.MatchString(s):
		return fmt.Errorf("value does not match regex pattern %q", re.String())
	case x.Prefix != nil && !strings.HasPrefix(s, x.GetPrefix()):
		return fmt.Errorf("value does not have prefix %q", x.GetPrefix())
	case x.Suffix != nil && !strings.HasSuffix(s, x.GetSuffix()):
		return fmt.Errorf("value does not have suffix %q", x.GetSuffix())
	case x.Contains != nil && !strings.Contains(s, x.GetContains()):
		return fmt.Errorf("value does not contain substring %q", x.GetContains())
	case x.NotContains != nil && strings.Contains(s, x.GetNotContains()):
		return fmt.Errorf("value contains substring %q", x.GetNotContains())
	case len(x.In) > 0 && !slices.Contains(x.In, s):
		return fmt.Errorf("value must be in list %q", x.In)
	case slices.Contains(x.NotIn, s):
		return fmt.Errorf("value must not be in list %q", x.NotIn)
	}
	if x.GetWellKnown() != nil {
		var p *regexp.Regexp
		switch k := x.GetWellKnownRegex(); {
		case k == pgv.KnownRegex_UNKNOWN:
		case !x.GetStrict():
			p = headerLoose
		case k == pgv.KnownRegex_HTTP_HEADER_NAME:
			p = headerName
		case k == pgv.KnownRegex_HTTP_HEADER_VALUE:
			p = headerValue
		}
		if p != nil && !p.MatchString(s) {
			return fmt.Errorf(errNotHeader, p.String())
		}
	}
	return nil
}

func checkBytes(b []byte, x *pgv.BytesRules, re *regexp.Regexp) error {
	if x.GetIgnoreEmpty() && len(b) == 0 {
		return nil
	}
	n := uint64(len(b))
	switch {
	case x.Const != nil && !bytes.Equal(b, x.GetConst()):
		return fmt.Errorf("value must equal %q", x.GetConst())
	case x.Len != nil && n != x.GetLen():
		return fmt.Errorf("value length must be %d bytes", x.GetLen())
	case x.MinLen != nil && n < x.GetMinLen():
		return fmt.Errorf("value length must be at least %d bytes", x.GetMinLen())
	case x.MaxLen != nil && n > x.GetMaxLen():
		return fmt.Errorf("value length must be at most %d bytes", x.GetMaxLen())
	case re != nil && !re.Match(b):
		return fmt.Errorf("value does not match regex pattern %q", re.String())
	case x.Prefix != nil && !bytes.HasPrefix(b, x.GetPrefix()):
		return fmt.Errorf("value does not have prefix %q", x.GetPrefix())
	case x.Suffix != nil && !bytes.HasSuffix(b, x.GetSuffix()):
		return fmt.Errorf("value does not have suffix %q", x.GetSuffix())
	case x.Contains != nil && !bytes.Contains(b, x.GetContains()):
		return fmt.Errorf("value does not contain %q", x.GetContains())
	case len(x.In) > 0 && !slices.ContainsFunc(x.In, func(y []byte) bool { return bytes.Equal(b, y) }):
		return fmt.Errorf("value must be in list %q", x.In)
	case slices.ContainsFunc(x.NotIn, func(y []byte) bool { return bytes.Equal(b, y) }):
		return fmt.Errorf("value must not be in list %q", x.NotIn)
	}
	return nil
}

func checkDuration(d *durationpb.Duration, x *pgv.DurationRules) error {
	if err := d.CheckValid(); err != nil {
		return fmt.Errorf("value is not a valid duration: %w", err)
	}
	v := d.AsDuration()
	get := func(p *durationpb.Duration) *time.Duration {
		if p == nil {
			return nil
		}
		t := p.AsDuration()
		return &t
	}
	list := func(ps []*durationpb.Duration) []time.Duration {
		out := make([]time.Duration, len(ps))
		for i, p := range ps {
			out[i] = p.AsDuration()
		}
		return out
	}
	return checkNum(v, get(x.Const), get(x.Lt), get(x.Lte), get(x.Gt), get(x.Gte), list(x.In), list(x.NotIn), false)
}

func checkTimestamp(ts *timestamppb.Timestamp, x *pgv.TimestampRules) error {
	if err := ts.CheckValid(); err != nil {
		return fmt.Errorf("value is not a valid timestamp: %w", err)
	}
	v := ts.AsTime().UnixNano()
	get := func(p *timestamppb.Timestamp) *int64 {
		if p == nil {
			return nil
		}
		t := p.AsTime().UnixNano()
		return &t
	}
	return checkNum(v, get(x.Const), get(x.Lt), get(x.Lte), get(x.Gt), get(x.Gte), nil, nil, false)
}

func checkAny(m protoreflect.Message, x *pgv.AnyRules) error {
	url := m.Get(m.Descriptor().Fields().ByName("type_url")).String()
	switch {
	case len(x.In) > 0 && !slices.Contains(x.In, url):
		return fmt.Errorf("type URL must be in list %v", x.In)
	case slices.Contains(x.NotIn, url):
		return fmt.Errorf("type URL must not be in list %v", x.NotIn)
	}
	return nil
}

// rulesSupported is every rule validate interprets, as
// "<kind>.<rule>" (the FieldRules oneof case and the rule's field name).
var rulesSupported = func() map[string]bool {
	m := map[string]bool{
		"message.skip": true, "message.required": true,
		"repeated.min_items": true, "repeated.max_items": true, "repeated.unique": true, "repeated.items": true, "repeated.ignore_empty": true,
		"map.min_pairs": true, "map.max_pairs": true, "map.keys": true, "map.values": true, "map.ignore_empty": true,
		"any.required": true, "any.in": true, "any.not_in": true,
		"duration.required": true, "timestamp.required": true,
		"bool.const": true,
		"enum.const": true, "enum.defined_only": true, "enum.in": true, "enum.not_in": true,
	}
	for _, k := range []string{"float", "double", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64", "duration", "timestamp"} {
		for _, r := range []string{"const", "lt", "lte", "gt", "gte", "in", "not_in", "ignore_empty"} {
			if (k == "duration" || k == "timestamp") && r == "ignore_empty" || k == "timestamp" && (r == "in" || r == "not_in") {
				continue
			}
			m[k+"."+r] = true
		}
	}
	for _, r := range []string{"const", "len", "min_len", "max_len", "len_bytes", "min_bytes", "max_bytes", "pattern", "prefix", "suffix",
		"contains", "not_contains", "in", "not_in", "well_known_regex", "strict", "ignore_empty"} {
		m["string."+r] = true
	}
	for _, r := range []string{"const", "len", "min_len", "max_len", "pattern", "prefix", "suffix", "contains", "in", "not_in", "ignore_empty"} {
		m["bytes."+r] = true
	}
	return m
}()

// unsupportedRules returns the rules of r (and of its repeated items and
// map keys and values) that validate does not interpret.
func unsupportedRules(r *pgv.FieldRules) []string {
	var out []string
	r.ProtoReflect().Range(func(kind protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		v.Message().Range(func(rule protoreflect.FieldDescriptor, rv protoreflect.Value) bool {
			name := string(kind.Name()) + "." + string(rule.Name())
			if !rulesSupported[name] {
				out = append(out, name)
			}
			if sub, ok := rv.Interface().(protoreflect.Message); ok {
				if fr, ok := sub.Interface().(*pgv.FieldRules); ok {
					out = append(out, unsupportedRules(fr)...)
				}
			}
			return true
		})
		return true
	})
	return out
}
