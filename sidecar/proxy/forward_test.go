package proxy

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestForwardHeadersAndAccessLog(t *testing.T) {
	type seen struct {
		Method, URI, Host, Proto, Body string
		Header                         http.Header
	}
	got := make(chan seen, 1)
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Proto: r.Proto, Body: string(b), Header: r.Header.Clone()}
		w.Header().Set("Connection", "X-Up-Hop")
		w.Header().Set("X-Up-Hop", "drop me")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Up", "kept")
		w.WriteHeader(201)
		io.WriteString(w, "created")
	})
	p := startProxy(t, catchAll(toCluster("app")), map[string]*config.Cluster{"app": oneHost("app", addrOf(up), config.HTTP1)}, nil)
	req := newReq(t, "POST", p.url("/a%2Fb/c?x=1&y=%20"), "hello",
		"Connection", "X-Hop", "X-Hop", "drop", "Keep-Alive", "1", "Proxy-Authorization", "secret",
		"X-Forwarded-For", "10.1.1.1", "Te", "trailers")
	req.Host = "svc.example.com"
	res, body := get(t, client(t, false), req)
	if res.StatusCode != 201 || body != "created" {
		t.Fatalf("response %d %q", res.StatusCode, body)
	}
	for _, k := range []string{"X-Up-Hop", "Keep-Alive"} {
		if v := res.Header.Get(k); v != "" {
			t.Errorf("response header %s = %q reached the client", k, v)
		}
	}
	if res.Header.Get("X-Up") != "kept" {
		t.Error("end-to-end response header lost")
	}
	if res.Header.Get("X-Envoy-Upstream-Service-Time") == "" {
		t.Error("no x-envoy-upstream-service-time")
	}
	s := <-got
	if s.URI != "/a%2Fb/c?x=1&y=%20" || s.Method != "POST" || s.Host != "svc.example.com" || s.Body != "hello" {
		t.Errorf("upstream saw %+v", s)
	}
	for _, k := range []string{"X-Hop", "Keep-Alive", "Proxy-Authorization"} {
		if v := s.Header.Get(k); v != "" {
			t.Errorf("hop-by-hop header %s = %q reached the upstream", k, v)
		}
	}
	if diff := cmp.Diff("10.1.1.1, 127.0.0.1", s.Header.Get("X-Forwarded-For")); diff != "" {
		t.Errorf("x-forwarded-for (-want +got):\n%s", diff)
	}
	if s.Header.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("x-forwarded-proto = %q", s.Header.Get("X-Forwarded-Proto"))
	}
	id := s.Header.Get("X-Request-Id")
	if len(id) != 36 || id[14] != '4' || !strings.Contains("89ab", id[19:20]) {
		t.Errorf("x-request-id %q is not a UUIDv4", id)
	}
	entry := p.logFor(t, "/a%2Fb/c?x=1&y=%20")
	want := map[string]any{
		"method": "POST", "authority": "svc.example.com", "path": "/a%2Fb/c?x=1&y=%20", "protocol": "HTTP/1.1",
		"status": int64(201), "response_flags": "-", "upstream_cluster": "app", "upstream_host": addrOf(up),
		"attempts": int64(1), "bytes_received": int64(5), "bytes_sent": int64(7), "request_id": id, "listener": "test",
	}
	for k, v := range want {
		if diff := cmp.Diff(v, entry[k]); diff != "" {
			t.Errorf("access log %s (-want +got):\n%s", k, diff)
		}
	}
	for _, k := range []string{"start_time", "duration_ms"} {
		if _, ok := entry[k]; !ok {
			t.Errorf("access log has no %s", k)
		}
	}
	// A request id sent by the client is kept.
	req = newReq(t, "GET", p.url("/"), "", "X-Request-Id", "client-id")
	get(t, client(t, false), req)
	if s := <-got; s.Header.Get("X-Request-Id") != "client-id" {
		t.Errorf("client request id replaced by %q", s.Header.Get("X-Request-Id"))
	}
}

func TestRouteSelectsCluster(t *testing.T) {
	mk := func(name string) *config.Cluster {
		up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })
		return oneHost(name, addrOf(up), config.HTTP1)
	}
	clusters := map[string]*config.Cluster{"api": mk("api"), "users": mk("users"), "grpcish": mk("grpcish"), "default": mk("default")}
	rc := &config.RouteConfig{VirtualHosts: []*config.VirtualHost{
		{Name: "api", Domains: []string{"api.example.com"}, Routes: []*config.Route{
			{Match: config.RouteMatch{Kind: config.PathExact, Path: "/users", CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "users"}},
			{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true, Headers: []config.HeaderMatcher{
				{Name: "content-type", Match: config.StringMatcher{Kind: config.MatchPrefix, Value: "application/grpc"}}}},
				Forward: &config.RouteAction{Cluster: "grpcish"}},
			{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/", CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "api"}},
		}},
		{Name: "other", Domains: []string{"*"}, Routes: []*config.Route{toCluster("default")}},
	}}
	p := startProxy(t, rc, clusters, nil)
	c := client(t, false)
	tests := []struct {
		name, host, path string
		hdr              []string
		want             string
	}{
		{"exact path", "api.example.com", "/users", nil, "users"},
		{"header", "api.example.com", "/x", []string{"Content-Type", "application/grpc"}, "grpcish"},
		{"prefix fallback", "api.example.com", "/users/1", nil, "api"},
		{"host with port", "api.example.com:8080", "/users", nil, "users"},
		{"other host", "www.example.com", "/users", nil, "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := newReq(t, "GET", p.url(tc.path), "", tc.hdr...)
			req.Host = tc.host
			if _, body := get(t, c, req); body != tc.want {
				t.Errorf("routed to %q, want %q", body, tc.want)
			}
		})
	}
}

func TestWeightedClusters(t *testing.T) {
	mk := func(name string) *config.Cluster {
		up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, name+" "+r.Header.Get("X-Split"))
		})
		return oneHost(name, addrOf(up), config.HTTP1)
	}
	rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{
		WeightedClusters: []config.WeightedCluster{
			{Name: "v1", Weight: 20, RequestHeadersToAdd: []config.HeaderValueOption{{Key: "x-split", Value: "v1"}}},
			{Name: "v2", Weight: 80, RequestHeadersToAdd: []config.HeaderValueOption{{Key: "x-split", Value: "v2"}}},
		},
		TotalWeight: 100,
	}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"v1": mk("v1"), "v2": mk("v2")}, nil)
	c := client(t, false)
	const n = 1000
	counts := map[string]int{}
	for range n {
		_, body := get(t, c, newReq(t, "GET", p.url("/"), ""))
		counts[body]++
	}
	// Binomial(1000, 0.2): sd ≈ 12.6; ±5 points is ~4 sd.
	if share := float64(counts["v1 v1"]) / n; math.Abs(share-0.2) > 0.05 {
		t.Errorf("v1 share %.3f, want 0.20±0.05 (%v)", share, counts)
	}
	if counts["v1 v1"]+counts["v2 v2"] != n {
		t.Errorf("weighted-cluster headers not applied to their cluster: %v", counts)
	}
}

func TestHashPolicySticky(t *testing.T) {
	var eps []config.Endpoint
	for i := range 4 {
		up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, i) })
		eps = append(eps, config.Endpoint{Address: addrOf(up), Weight: 1})
	}
	tests := []struct {
		name   string
		policy config.HashPolicy
		set    func(r *http.Request, key string)
		lb     config.LBPolicy
	}{
		{"header ring hash", config.HashPolicy{Header: "x-user"}, func(r *http.Request, k string) { r.Header.Set("X-User", k) }, config.RingHash},
		{"cookie maglev", config.HashPolicy{Cookie: "session"}, func(r *http.Request, k string) { r.AddCookie(&http.Cookie{Name: "session", Value: k}) }, config.Maglev},
		{"query ring hash", config.HashPolicy{QueryParam: "user"}, func(r *http.Request, k string) { r.URL.RawQuery = "user=" + k }, config.RingHash},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := &config.Route{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: "c", HashPolicies: []config.HashPolicy{tc.policy}}}
			p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"c": {Name: "c", LBPolicy: tc.lb, Endpoints: eps}}, nil)
			c := client(t, false)
			hosts := map[string]bool{}
			for k := range 20 {
				key := fmt.Sprint("key-", k)
				first := ""
				for range 5 {
					req := newReq(t, "GET", p.url("/"), "")
					tc.set(req, key)
					_, body := get(t, c, req)
					if first == "" {
						first = body
					} else if body != first {
						t.Fatalf("key %s went to %s then %s", key, first, body)
					}
				}
				hosts[first] = true
			}
			if len(hosts) < 2 {
				t.Errorf("20 keys all on %v: hash not used", hosts)
			}
		})
	}
}

func TestHostRewrite(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })
	tests := []struct {
		name   string
		action config.RouteAction
		want   string
	}{
		{"none", config.RouteAction{Cluster: "c"}, "original.example.com"},
		{"literal", config.RouteAction{Cluster: "c", HostRewriteLiteral: "rewritten.example.com"}, "rewritten.example.com"},
		{"auto", config.RouteAction{Cluster: "c", AutoHostRewrite: true}, addrOf(up)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.action
			p := startProxy(t, catchAll(&config.Route{Match: config.RouteMatch{CaseSensitive: true}, Forward: &a}),
				map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
			req := newReq(t, "GET", p.url("/"), "")
			req.Host = "original.example.com"
			if _, body := get(t, client(t, false), req); body != tc.want {
				t.Errorf("upstream Host %q, want %q", body, tc.want)
			}
		})
	}
}

func TestPathRewrite(t *testing.T) {
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RequestURI+" "+r.Header.Get("X-Envoy-Original-Path"))
	})
	rt := &config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/api/", CaseSensitive: true},
		Forward: &config.RouteAction{Cluster: "c", PrefixRewrite: "/v2/"}}
	p := startProxy(t, catchAll(rt), map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	if _, body := get(t, client(t, false), newReq(t, "GET", p.url("/api/items?q=1"), "")); body != "/v2/items?q=1 /api/items?q=1" {
		t.Errorf("upstream saw %q, want the rewritten path and x-envoy-original-path", body)
	}
}

func TestHeaderManipulation(t *testing.T) {
	got := make(chan http.Header, 1)
	up := upstream(t, false, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.Header().Set("X-Resp-Remove-Route", "x")
		w.Header().Set("X-Resp-Remove-Vh", "x")
		w.Header().Set("X-Resp-Remove-Rc", "x")
		w.Header().Set("X-Resp-Keep", "x")
	})
	hv := func(k, v string, appendValue bool) config.HeaderValueOption {
		return config.HeaderValueOption{Key: k, Value: v, Append: appendValue}
	}
	rt := &config.Route{
		Match:                   config.RouteMatch{CaseSensitive: true},
		Forward:                 &config.RouteAction{Cluster: "c"},
		RequestHeadersToAdd:     []config.HeaderValueOption{hv("x-level", "route", false), hv("x-multi", "route", true)},
		RequestHeadersToRemove:  []string{"x-remove-route"},
		ResponseHeadersToAdd:    []config.HeaderValueOption{hv("x-resp-level", "route", false)},
		ResponseHeadersToRemove: []string{"x-resp-remove-route"},
	}
	rc := &config.RouteConfig{
		VirtualHosts: []*config.VirtualHost{{
			Domains: []string{"*"}, Routes: []*config.Route{rt},
			RequestHeadersToAdd:     []config.HeaderValueOption{hv("x-level", "vhost", false), hv("x-multi", "vhost", true)},
			RequestHeadersToRemove:  []string{"x-remove-vh"},
			ResponseHeadersToAdd:    []config.HeaderValueOption{hv("x-resp-vh", "vhost", false)},
			ResponseHeadersToRemove: []string{"x-resp-remove-vh"},
		}},
		RequestHeadersToAdd:     []config.HeaderValueOption{hv("x-rc", "rc", false)},
		RequestHeadersToRemove:  []string{"x-remove-rc"},
		ResponseHeadersToAdd:    []config.HeaderValueOption{hv("x-resp-level", "rc", false)},
		ResponseHeadersToRemove: []string{"x-resp-remove-rc"},
	}
	p := startProxy(t, rc, map[string]*config.Cluster{"c": oneHost("c", addrOf(up), config.HTTP1)}, nil)
	res, _ := get(t, client(t, false), newReq(t, "GET", p.url("/"), "",
		"X-Remove-Route", "1", "X-Remove-Vh", "1", "X-Remove-Rc", "1", "X-Multi", "client", "X-Keep", "1"))
	h := <-got
	wantReq := map[string][]string{
		"X-Level": {"vhost"}, // the outer level wins on overwrite
		"X-Multi": {"client", "route", "vhost"},
		"X-Rc":    {"rc"},
		"X-Keep":  {"1"},
	}
	for k, v := range wantReq {
		if diff := cmp.Diff(v, h.Values(k)); diff != "" {
			t.Errorf("request %s (-want +got):\n%s", k, diff)
		}
	}
	for _, k := range []string{"X-Remove-Route", "X-Remove-Vh", "X-Remove-Rc"} {
		if h.Get(k) != "" {
			t.Errorf("request header %s not removed", k)
		}
	}
	wantRes := map[string]string{"X-Resp-Level": "rc", "X-Resp-Vh": "vhost", "X-Resp-Keep": "x",
		"X-Resp-Remove-Route": "", "X-Resp-Remove-Vh": "", "X-Resp-Remove-Rc": ""}
	for k, v := range wantRes {
		if got := res.Header.Get(k); got != v {
			t.Errorf("response %s = %q, want %q", k, got, v)
		}
	}
}

func TestDirectResponseAndRedirect(t *testing.T) {
	rc := catchAll(
		&config.Route{Match: config.RouteMatch{Kind: config.PathExact, Path: "/health", CaseSensitive: true},
			DirectResponse:       &config.DirectResponseAction{Status: 200, Body: []byte("ok\n")},
			ResponseHeadersToAdd: []config.HeaderValueOption{{Key: "x-direct", Value: "1"}}},
		&config.Route{Match: config.RouteMatch{Kind: config.PathExact, Path: "/gone", CaseSensitive: true},
			DirectResponse: &config.DirectResponseAction{Status: 410}},
		&config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/old/", CaseSensitive: true},
			Redirect: &config.RedirectAction{PrefixRewrite: "/new/", ResponseCode: 308}},
		&config.Route{Match: config.RouteMatch{Kind: config.PathPrefix, Path: "/secure", CaseSensitive: true},
			Redirect: &config.RedirectAction{HTTPSRedirect: true}},
	)
	p := startProxy(t, rc, nil, nil)
	c := client(t, false)
	tests := []struct {
		path, host   string
		code         int
		body, header string
		value        string
	}{
		{"/health", "h", 200, "ok\n", "X-Direct", "1"},
		{"/gone", "h", 410, "", "Content-Length", "0"},
		{"/old/a?b=1", "example.com", 308, "", "Location", "http://example.com/new/a?b=1"},
		{"/secure/x", "example.com:80", 301, "", "Location", "https://example.com/secure/x"},
		{"/secure/y", "example.com:8080", 301, "", "Location", "https://example.com:8080/secure/y"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			req := newReq(t, "GET", p.url(tc.path), "")
			req.Host = tc.host
			res, body := get(t, c, req)
			if res.StatusCode != tc.code || body != tc.body || res.Header.Get(tc.header) != tc.value {
				t.Errorf("got %d %q %s=%q; want %d %q %q", res.StatusCode, body, tc.header, res.Header.Get(tc.header), tc.code, tc.body, tc.value)
			}
		})
	}
}
