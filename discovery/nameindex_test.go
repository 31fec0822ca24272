package discovery

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNameIndex(t *testing.T) {
	type op struct {
		add  bool
		name string
	}
	tests := []struct {
		name string
		ops  []op
		want []string
	}{
		{"one name", []op{{true, "a"}}, []string{"a"}},
		{"duplicates ignored", []op{{true, "a"}, {true, "a"}, {true, "b"}, {true, "b"}}, []string{"a", "b"}},
		{"removing the first promotes the next", []op{{true, "a"}, {true, "b"}, {true, "c"}, {false, "a"}}, []string{"b", "c"}},
		{"removing a later one", []op{{true, "a"}, {true, "b"}, {true, "c"}, {false, "b"}}, []string{"a", "c"}},
		{"removing everything", []op{{true, "a"}, {true, "b"}, {false, "a"}, {false, "b"}}, nil},
		{"removing an absent name", []op{{true, "a"}, {false, "z"}}, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newNameIndex()
			for _, o := range tt.ops {
				if o.add {
					x.add("k", o.name)
				} else {
					x.remove("k", o.name)
				}
			}
			if diff := cmp.Diff(tt.want, slices.Collect(x.names("k"))); diff != "" {
				t.Errorf("names (-want +got):\n%s", diff)
			}
			if len(tt.want) == 0 && (len(x.first) != 0 || len(x.more) != 0) {
				t.Errorf("empty index keeps entries: %+v", x)
			}
		})
	}
}
