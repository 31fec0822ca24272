package discovery

import (
	"strings"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func TestDecodeEntryExtensionKeys(t *testing.T) {
	tests := []struct {
		name    string
		kind    mesh.EntryKind
		raw     RawEntry
		field   string
		errPart string // "" = the entry decodes
	}{
		{"router retry keys", mesh.KindServiceRouter,
			RawEntry{"Kind": "service-router", "Name": "web", "Meta": map[string]any{"consulate_retry_backoff_base": "50ms", "owner": "x"}}, "", ""},
		{"unknown key", mesh.KindServiceRouter,
			RawEntry{"Kind": "service-router", "Name": "web", "Meta": map[string]any{"consulate_retry_backof_base": "50ms"}},
			"Meta[consulate_retry_backof_base]", "unknown extension key"},
		{"cluster key in a router", mesh.KindServiceRouter,
			RawEntry{"Kind": "service-router", "Name": "web", "Meta": map[string]any{"consulate_max_ejection_time": "1m"}},
			"Meta[consulate_max_ejection_time]", "does not apply to a service-router entry"},
		{"any key in a splitter", mesh.KindServiceSplitter,
			RawEntry{"Kind": "service-splitter", "Name": "web", "Meta": map[string]any{"consulate_retry_per_try_timeout": "1s"},
				"Splits": []any{map[string]any{"Weight": 100.0}}},
			"Meta[consulate_retry_per_try_timeout]", "does not apply"},
		{"bad resolver value", mesh.KindServiceResolver,
			RawEntry{"Kind": "service-resolver", "Name": "web", "Meta": map[string]any{"consulate_healthy_panic_threshold": "150"}},
			"Meta[consulate_healthy_panic_threshold]", "not a percentage"},
		{"service-defaults include warning", mesh.KindServiceDefaults,
			RawEntry{"Kind": "service-defaults", "Name": "web", "Meta": map[string]any{"consulate_include_warning": "maybe"}},
			"Meta[consulate_include_warning]", "not true or false"},
		{"proxy-defaults Config numbers and bools", mesh.KindProxyDefaults,
			RawEntry{"Kind": "proxy-defaults", "Name": "global", "Config": map[string]any{
				"consulate_retry_budget_percent": 20.0, "consulate_include_warning": true, "consulate_retry_backoff_max": "1s"}}, "", ""},
		{"proxy-defaults Config bad duration", mesh.KindProxyDefaults,
			RawEntry{"Kind": "proxy-defaults", "Name": "global", "Config": map[string]any{"consulate_retry_backoff_max": 5.0}},
			"Config[consulate_retry_backoff_max]", "not a positive duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref := mesh.EntryRef{Kind: tt.kind, Name: stringField(tt.raw, "Name")}
			d := decodeEntry(ref, tt.raw)
			if tt.errPart == "" {
				if len(d.errs) > 0 {
					t.Fatalf("errors = %+v, want none", d.errs)
				}
				return
			}
			if len(d.errs) != 1 {
				t.Fatalf("errors = %+v, want exactly one", d.errs)
			}
			if e := d.errs[0]; e.Entry != ref || e.Field != tt.field || !strings.Contains(e.Err, tt.errPart) {
				t.Errorf("error = %+v, want field %q, text containing %q", e, tt.field, tt.errPart)
			}
		})
	}
}
