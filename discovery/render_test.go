package discovery

import (
	"encoding/json"
	"testing"
)

func TestRenderValue(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"string", "http", "http"},
		{"integer-valued float without exponent", float64(12345678), "12345678"},
		{"fraction", 0.25, "0.25"},
		{"bool", false, "false"},
		{"null", nil, ""},
		{"json number", json.Number("42"), "42"},
		{"int", 7, "7"},
		{"nested map", map[string]any{"b": 1.0, "a": "x"}, `{"a":"x","b":1}`},
		{"list", []any{"a", true}, `["a",true]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := renderValue(tt.in); got != tt.want {
				t.Errorf("renderValue(%#v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
