package filter

import (
	"testing"
)

// FuzzParse: any input either fails to parse or evaluates without
// panicking, and parsing is deterministic.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`Service.Meta.version == v2`,
		`v2 in Service.Tags and not (Service.Port != 8080 or Node.Meta.rack is empty)`,
		`Service.ID matches "^api-[0-9]+$"`,
		"Service.Meta.zone not matches `^us-`",
		`Service.Tags not contains "x" or Service.Meta is not empty`,
		`"k" not in Node.Meta`,
		`((((`, `"`, "`", `Service.ID == "a\"b"`, `not`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		_, err2 := Parse(s)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("Parse(%q) is not deterministic: %v vs %v", s, err, err2)
		}
		if err != nil {
			return
		}
		inst := testInstance()
		first := e.Match(inst)
		if e.Match(inst) != first {
			t.Fatalf("Match(%q) is not deterministic", s)
		}
	})
}
