package proxy

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/cluster"
	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestRequestHash(t *testing.T) {
	r := httptest.NewRequest("GET", "/?user=u1", nil)
	r.RemoteAddr = "10.1.2.3:5555"
	r.Header.Set("X-User", "alice")
	r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	hs := cluster.HashString
	tests := []struct {
		name      string
		policies  []config.HashPolicy
		want      uint64
		ok        bool
		setCookie string
	}{
		{name: "none", ok: false},
		{name: "header", policies: []config.HashPolicy{{Header: "x-user"}}, want: hs("alice"), ok: true},
		{name: "cookie", policies: []config.HashPolicy{{Cookie: "sid"}}, want: hs("s1"), ok: true},
		{name: "source ip", policies: []config.HashPolicy{{SourceIP: true}}, want: hs("10.1.2.3"), ok: true},
		{name: "query", policies: []config.HashPolicy{{QueryParam: "user"}}, want: hs("u1"), ok: true},
		{name: "missing values are skipped", policies: []config.HashPolicy{{Header: "x-none"}, {QueryParam: "user"}}, want: hs("u1"), ok: true},
		{name: "combined", policies: []config.HashPolicy{{Header: "x-user"}, {SourceIP: true}},
			want: cluster.CombineHash(hs("alice"), true, hs("10.1.2.3")), ok: true},
		{name: "terminal stops", policies: []config.HashPolicy{{Header: "x-user", Terminal: true}, {SourceIP: true}}, want: hs("alice"), ok: true},
		{name: "generated cookie", policies: []config.HashPolicy{{Cookie: "new", CookieTTL: time.Hour, CookiePath: "/"}},
			want: hs(strconvHex(hs("10.1.2.3:5555"))), ok: true, setCookie: "new=" + strconvHex(hs("10.1.2.3:5555")) + "; Path=/; Max-Age=3600; HttpOnly"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, setCookie := requestHash(tc.policies, r)
			if got != tc.want || ok != tc.ok || setCookie != tc.setCookie {
				t.Errorf("requestHash = %x %v %q; want %x %v %q", got, ok, setCookie, tc.want, tc.ok, tc.setCookie)
			}
		})
	}
}

func strconvHex(v uint64) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	started := false
	for i := 60; i >= 0; i -= 4 {
		d := (v >> uint(i)) & 0xf
		if d != 0 || started || i == 0 {
			started = true
			b.WriteByte(digits[d])
		}
	}
	return b.String()
}
