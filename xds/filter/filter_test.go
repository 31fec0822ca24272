package filter

import (
	"strings"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func testInstance() *mesh.Instance {
	return &mesh.Instance{
		ID: "api-2", Service: "api", Node: "node-3", Datacenter: "dc1",
		Address: "10.0.0.3", Port: 8080,
		Tags:     []string{"v2", "canary"},
		Meta:     map[string]string{"version": "2.1.0", "zone": "eu-west-1a", "empty": ""},
		NodeMeta: map[string]string{"rack": "r7"},
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want bool
	}{
		{"empty expression matches all", "", true},
		{"meta equal quoted", `Service.Meta.version == "2.1.0"`, true},
		{"meta equal bare", `Service.Meta.version == 2.1.0`, true},
		{"meta equal backquoted", "Service.Meta.zone == `eu-west-1a`", true},
		{"meta not equal", `Service.Meta.version != "1"`, true},
		{"missing meta key is not equal", `Service.Meta.nope == "x"`, false},
		{"missing meta key not-equal holds", `Service.Meta.nope != "x"`, true},
		{"missing meta key is empty", `Service.Meta.nope is empty`, true},
		{"empty meta value is empty", `Service.Meta.empty is empty`, true},
		{"meta value is not empty", `Service.Meta.version is not empty`, true},
		{"tag in tags", `v2 in Service.Tags`, true},
		{"quoted tag in tags", `"canary" in Service.Tags`, true},
		{"tag not in tags", `v1 not in Service.Tags`, true},
		{"tag not in tags false", `v2 not in Service.Tags`, false},
		{"tags contains", `Service.Tags contains "v2"`, true},
		{"tags not contains", `Service.Tags not contains "v3"`, true},
		{"tags is empty", `Service.Tags is empty`, false},
		{"meta key in meta", `version in Service.Meta`, true},
		{"meta contains key", `Service.Meta contains "zone"`, true},
		{"meta is not empty", `Service.Meta is not empty`, true},
		{"string contains substring", `Service.ID contains "pi-"`, true},
		{"substring in string", `"node" in Node.Node`, true},
		{"matches", `Service.Meta.version matches "^2\\."`, true},
		{"matches backquoted", "Service.Meta.zone matches `^eu-`", true},
		{"not matches", `Service.Meta.version not matches "^1"`, true},
		{"port equal", `Service.Port == 8080`, true},
		{"port not equal", `Service.Port != 8080`, false},
		{"id", `Service.ID == "api-2"`, true},
		{"service name", `Service.Service == api`, true},
		{"address", `Service.Address == "10.0.0.3"`, true},
		{"node name", `Node.Node == "node-3"`, true},
		{"datacenter", `Node.Datacenter == dc1`, true},
		{"node meta", `Node.Meta.rack == r7`, true},
		{"node meta key", `rack in Node.Meta`, true},
		{"and", `Service.Meta.version == "2.1.0" and v2 in Service.Tags`, true},
		{"and false", `Service.Meta.version == "2.1.0" and v1 in Service.Tags`, false},
		{"or", `v1 in Service.Tags or v2 in Service.Tags`, true},
		{"not", `not v1 in Service.Tags`, true},
		{"not not", `not not v1 in Service.Tags`, false},
		{"precedence: and binds tighter than or", `v1 in Service.Tags and v9 in Service.Tags or canary in Service.Tags`, true},
		{"parentheses", `v1 in Service.Tags and (v9 in Service.Tags or canary in Service.Tags)`, false},
		{"nested parentheses", `((Service.Port == 8080))`, true},
		{"not over parentheses", `not (Service.Port == 8080 or v9 in Service.Tags)`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Parse(tt.expr)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.expr, err)
			}
			if got := e.Match(testInstance()); got != tt.want {
				t.Errorf("Parse(%q).Match = %v, want %v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		expr string
		want string // substring of the error
	}{
		{"unknown selector", `Service.Version == 2`, "unknown selector"},
		{"checks are not supported", `Checks.Status == passing`, "unknown selector"},
		{"comparison of tags", `Service.Tags == v2`, "cannot be compared"},
		{"comparison of meta map", `Service.Meta != x`, "cannot be compared"},
		{"port is a number", `Service.Port == http`, "is a number"},
		{"port cannot be empty", `Service.Port is empty`, "cannot be empty"},
		{"port in", `8080 in Service.Port`, "cannot be used with in"},
		{"matches on tags", `Service.Tags matches "v"`, "string selector"},
		{"bad regex", `Service.ID matches "(?=x)"`, "invalid or unsupported Perl syntax"},
		{"missing value", `Service.ID ==`, "want a value"},
		{"missing operator", `Service.ID`, "want ==, !=, is"},
		{"unknown operator", `Service.ID < 3`, "unexpected"},
		{"single equals", `Service.ID = x`, "unexpected"},
		{"unbalanced paren", `(Service.Port == 1`, "want ')'"},
		{"trailing garbage", `Service.Port == 1 )`, "after a complete expression"},
		{"dangling and", `Service.Port == 1 and`, "want a selector or a value"},
		{"unterminated string", `Service.ID == "abc`, "unterminated"},
		{"is without empty", `Service.ID is set`, "want \"empty\""},
		{"value on the left", `"x" == Service.ID`, "want a selector"},
		{"deep nesting", strings.Repeat("(", 200) + "Service.Port == 1" + strings.Repeat(")", 200), "nested deeper"},
		{"non-ASCII", `Service.ID == é`, "unexpected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.expr)
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want one containing %q", tt.expr, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) = %v, want an error containing %q", tt.expr, err, tt.want)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	e, err := Parse(`Service.Meta.version matches "^2\\." and (v2 in Service.Tags or Node.Meta.rack == r7)`)
	if err != nil {
		b.Fatal(err)
	}
	inst := testInstance()
	b.ReportAllocs()
	for b.Loop() {
		if !e.Match(inst) {
			b.Fatal("no match")
		}
	}
}
