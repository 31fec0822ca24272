package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newManager(t *testing.T) (*Manager, *observer.ObservedLogs) {
	t.Helper()
	m, logs, _ := newManagerWithRegistry(t)
	return m, logs
}

func newManagerWithRegistry(t *testing.T) (*Manager, *observer.ObservedLogs, *prometheus.Registry) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	reg := prometheus.NewRegistry()
	m, err := NewManager(zap.New(core), reg, Options{DrainTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m, logs, reg
}

// named starts an upstream answering its name; /slow waits for release.
func named(t *testing.T, name string, release <-chan struct{}) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func httpLn(name, addr, routeName string) *config.Listener {
	return &config.Listener{Name: name, Address: addr, HTTP: &config.HTTPConnectionManager{RouteConfigName: routeName, GenerateRequestID: true}}
}

func routeTo(name, cluster string) *config.RouteConfig {
	return &config.RouteConfig{Name: name, VirtualHosts: []*config.VirtualHost{{Domains: []string{"*"}, Routes: []*config.Route{
		{Match: config.RouteMatch{CaseSensitive: true}, Forward: &config.RouteAction{Cluster: cluster}},
	}}}}
}

func clusterAt(name, addr string) *config.Cluster {
	return &config.Cluster{Name: name, ConnectTimeout: time.Second, Endpoints: []config.Endpoint{{Address: addr, Weight: 1}}}
}

func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// fetch returns the body and whether the connection was reused.
func fetch(t *testing.T, c *http.Client, url string) (string, bool, error) {
	t.Helper()
	var reused bool
	ctx := httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }})
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := c.Do(req)
	if err != nil {
		return "", false, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), reused, err
}

func TestUpdateKeepsSocketAndConnections(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	a, b := named(t, "a", release), named(t, "b", release)
	m, _ := newManager(t)
	cfg1 := &config.Config{
		Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r"), "other": httpLn("other", "127.0.0.1:0", "r")},
		Routes:    map[string]*config.RouteConfig{"r": routeTo("r", "a")},
		Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a), "b": clusterAt("b", b)},
	}
	if err := m.Apply(cfg1); err != nil {
		t.Fatal(err)
	}
	web, other := m.Addr("web").String(), m.Addr("other").String()
	base := "http://" + web
	idle := client(t)
	if body, _, err := fetch(t, idle, base+"/"); err != nil || body != "a" {
		t.Fatalf("before update: %q %v", body, err)
	}
	// A request in flight on the old config.
	inflight := make(chan string, 1)
	go func() {
		body, _, err := fetch(t, client(t), base+"/slow")
		if err != nil {
			body = err.Error()
		}
		inflight <- body
	}()
	deadline := time.Now().Add(5 * time.Second)
	for activeRequests(m, "a") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow request never reached the upstream")
		}
		time.Sleep(time.Millisecond)
	}

	// Same listeners and addresses, the route now goes to b.
	cfg2 := &config.Config{
		Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r"), "other": httpLn("other", "127.0.0.1:0", "r")},
		Routes:    map[string]*config.RouteConfig{"r": routeTo("r", "b")},
		Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a), "b": clusterAt("b", b)},
	}
	if err := m.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	if got := m.Addr("web").String(); got != web {
		t.Fatalf("socket changed from %s to %s", web, got)
	}
	if got := m.Addr("other").String(); got != other {
		t.Fatalf("unchanged listener's socket changed from %s to %s", other, got)
	}
	body, reused, err := fetch(t, idle, base+"/")
	if err != nil || body != "b" {
		t.Fatalf("after update: %q %v, want b", body, err)
	}
	if !reused {
		t.Error("the idle keep-alive connection was dropped by the update")
	}
	once.Do(func() { close(release) })
	if got := <-inflight; got != "a" {
		t.Errorf("in-flight request got %q, want a (old config)", got)
	}
	// Applying the same config again changes nothing.
	if err := m.Apply(cfg2); err != nil {
		t.Fatal(err)
	}
	if body, reused, err := fetch(t, idle, base+"/"); err != nil || body != "b" || !reused {
		t.Errorf("after idempotent apply: %q reused=%v %v", body, reused, err)
	}
}

func activeRequests(m *Manager, cluster string) int64 {
	var n int64
	for _, h := range m.Clusters() {
		if h.Cluster == cluster {
			n += h.ActiveRequests
		}
	}
	return n
}

func TestRemoveAndMoveListeners(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	a := named(t, "a", release)
	m, _ := newManager(t)
	clusters := map[string]*config.Cluster{"a": clusterAt("a", a)}
	routes := map[string]*config.RouteConfig{"r": routeTo("r", "a")}
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{
		"gone": httpLn("gone", "127.0.0.1:0", "r"), "moves": httpLn("moves", "127.0.0.1:0", "r"),
	}, Routes: routes, Clusters: clusters}); err != nil {
		t.Fatal(err)
	}
	gone, moved := m.Addr("gone").String(), m.Addr("moves").String()
	inflight := make(chan string, 1)
	go func() {
		body, _, err := fetch(t, client(t), "http://"+gone+"/slow")
		if err != nil {
			body = err.Error()
		}
		inflight <- body
	}()
	deadline := time.Now().Add(5 * time.Second)
	for activeRequests(m, "a") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow request never reached the upstream")
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{
		"moves": httpLn("moves", "127.0.0.2:0", "r"),
	}, Routes: routes, Clusters: clusters}); err != nil {
		t.Fatal(err)
	}
	if m.Addr("gone") != nil {
		t.Error("removed listener still listed")
	}
	newAddr := m.Addr("moves").String()
	if !strings.HasPrefix(newAddr, "127.0.0.2:") {
		t.Fatalf("moved listener on %s", newAddr)
	}
	if body, _, err := fetch(t, client(t), "http://"+newAddr+"/"); err != nil || body != "a" {
		t.Errorf("moved listener: %q %v", body, err)
	}
	for _, old := range []string{gone, moved} {
		if c, err := net.DialTimeout("tcp", old, time.Second); err == nil {
			c.Close()
			t.Errorf("old address %s still accepts connections", old)
		}
	}
	once.Do(func() { close(release) })
	if got := <-inflight; got != "a" {
		t.Errorf("request in flight on the removed listener got %q, want a (drained)", got)
	}
}

// TestApplyBusyAddressChangesNothing: a config with a listener on a port
// someone else holds is refused whole (the xDS client NACKs it): the
// running listeners keep their routes and clusters, and the listener that
// could have opened does not.
func TestApplyBusyAddressChangesNothing(t *testing.T) {
	a, b := named(t, "a", nil), named(t, "b", nil)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	m, _ := newManager(t)
	if err := m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r")},
		Routes:    map[string]*config.RouteConfig{"r": routeTo("r", "a")},
		Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a)},
	}); err != nil {
		t.Fatal(err)
	}
	web := "http://" + m.Addr("web").String() + "/"
	c := client(t)

	err = m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{
			"web":   httpLn("web", "127.0.0.1:0", "r"),
			"clash": httpLn("clash", busy.Addr().String(), "r"),
			"fine":  httpLn("fine", "127.0.0.1:0", "r"),
		},
		Routes:   map[string]*config.RouteConfig{"r": routeTo("r", "b")},
		Clusters: map[string]*config.Cluster{"b": clusterAt("b", b)},
	})
	if err == nil || !strings.Contains(err.Error(), "listener clash") || !strings.Contains(err.Error(), "nothing applied") {
		t.Fatalf("err = %v, want one naming listener clash and saying nothing was applied", err)
	}
	if m.Addr("fine") != nil || m.Addr("clash") != nil {
		t.Error("a listener of the refused config was opened")
	}
	if body, _, err := fetch(t, c, web); err != nil || body != "a" {
		t.Errorf("after the refused config web answers %q, %v; want the old route to a", body, err)
	}

	// The same config once the port is free applies whole.
	busy.Close()
	if err := m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{
			"web":   httpLn("web", "127.0.0.1:0", "r"),
			"clash": httpLn("clash", busy.Addr().String(), "r"),
		},
		Routes:   map[string]*config.RouteConfig{"r": routeTo("r", "b")},
		Clusters: map[string]*config.Cluster{"b": clusterAt("b", b)},
	}); err != nil {
		t.Fatal(err)
	}
	if body, _, err := fetch(t, c, web); err != nil || body != "b" {
		t.Errorf("after the new config web answers %q, %v; want b", body, err)
	}
}

func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c) // echo until the client half-closes
				c.(*net.TCPConn).CloseWrite()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestTCPProxy(t *testing.T) {
	echo := echoServer(t)
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	m, logs := newManager(t)
	err = m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{
			"echo": {Name: "echo", Address: "127.0.0.1:0", TCP: &config.TCPProxy{Cluster: "echo", IdleTimeout: time.Minute}},
			"dead": {Name: "dead", Address: "127.0.0.1:0", TCP: &config.TCPProxy{Cluster: "dead"}},
		},
		Clusters: map[string]*config.Cluster{"echo": clusterAt("echo", echo), "dead": clusterAt("dead", deadAddr)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("echo with half-close", func(t *testing.T) {
		c, err := net.Dial("tcp", m.Addr("echo").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		payload := strings.Repeat("0123456789", 10000)
		go func() {
			io.WriteString(c, payload)
			c.(*net.TCPConn).CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != payload {
			t.Fatalf("echoed %d bytes, %v; want %d", len(got), err, len(payload))
		}
	})
	t.Run("dead backend closes the connection", func(t *testing.T) {
		c, err := net.Dial("tcp", m.Addr("dead").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := bufio.NewReader(c).ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("read %v, want EOF", err)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		flags := map[string]bool{}
		for _, e := range logs.FilterMessage("access").All() {
			flags[e.ContextMap()["response_flags"].(string)] = true
		}
		if flags["UF"] && flags["-"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log flags %v, want UF and -", flags)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestKindChangeOnSameAddress(t *testing.T) {
	echo := echoServer(t)
	a := named(t, "a", nil)
	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := port.Addr().String()
	port.Close()
	m, _ := newManager(t)
	clusters := map[string]*config.Cluster{"a": clusterAt("a", a), "echo": clusterAt("echo", echo)}
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{"l": httpLn("l", addr, "r")},
		Routes: map[string]*config.RouteConfig{"r": routeTo("r", "a")}, Clusters: clusters}); err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{"l": {Name: "l", Address: addr, TCP: &config.TCPProxy{Cluster: "echo"}}},
		Clusters: clusters}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "raw bytes")
	c.(*net.TCPConn).CloseWrite()
	if got, _ := io.ReadAll(c); string(got) != "raw bytes" {
		t.Errorf("TCP proxy on the reused address echoed %q", got)
	}
}

func TestTCPIdleTimeout(t *testing.T) {
	echo := echoServer(t)
	m, _ := newManager(t)
	if err := m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{"l": {Name: "l", Address: "127.0.0.1:0", TCP: &config.TCPProxy{Cluster: "echo", IdleTimeout: 500 * time.Millisecond}}},
		Clusters:  map[string]*config.Cluster{"echo": clusterAt("echo", echo)},
	}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", m.Addr("l").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	// Active for 1.6× the idle timeout, never quiet for more than a fifth
	// of it (plus a loaded machine's scheduling): the connection stays.
	for i := range 8 {
		fmt.Fprintf(c, "%d\n", i)
		if line, err := br.ReadString('\n'); err != nil || line != fmt.Sprintf("%d\n", i) {
			t.Fatalf("echo %d: %q %v", i, line, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Then idle: the proxy closes it.
	start := time.Now()
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("read after idling: %v, want EOF", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v of idleness, want about 500ms", d)
	}
}

func TestActiveConnectionsMetric(t *testing.T) {
	a := named(t, "a", nil)
	m, _, reg := newManagerWithRegistry(t)
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r")},
		Routes: map[string]*config.RouteConfig{"r": routeTo("r", "a")}, Clusters: map[string]*config.Cluster{"a": clusterAt("a", a)}}); err != nil {
		t.Fatal(err)
	}
	gauge := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "consulate_sidecar_downstream_connections_active" {
				for _, mt := range mf.GetMetric() {
					return mt.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
	c := client(t)
	if body, _, err := fetch(t, c, "http://"+m.Addr("web").String()+"/"); err != nil || body != "a" {
		t.Fatalf("%q %v", body, err)
	}
	if g := gauge(); g != 1 {
		t.Errorf("active connections with one keep-alive connection = %v, want 1", g)
	}
	c.Transport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for gauge() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("active connections after close = %v, want 0", gauge())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Clusters reports the host's live state.
	st := m.Clusters()
	if len(st) != 1 || st[0].Cluster != "a" || st[0].TotalRequests != 1 || !st[0].Available {
		t.Errorf("Clusters() = %+v", st)
	}
}

func TestUpdateKeepsHTTP2Connections(t *testing.T) {
	a, b := named(t, "a", nil), named(t, "b", nil)
	m, _ := newManager(t)
	cfg := func(target string) *config.Config {
		return &config.Config{
			Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r")},
			Routes:    map[string]*config.RouteConfig{"r": routeTo("r", target)},
			Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a), "b": clusterAt("b", b)},
		}
	}
	if err := m.Apply(cfg("a")); err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	url := "http://" + m.Addr("web").String() + "/"
	if body, _, err := fetch(t, c, url); err != nil || body != "a" {
		t.Fatalf("before: %q %v", body, err)
	}
	if err := m.Apply(cfg("b")); err != nil {
		t.Fatal(err)
	}
	body, reused, err := fetch(t, c, url)
	if err != nil || body != "b" || !reused {
		t.Errorf("after update over h2c: %q reused=%v %v; want b on the same connection", body, reused, err)
	}
}

// taggedEcho answers each line with tag + line.
func taggedEcho(t *testing.T, tag string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(c, tag+line)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestTCPUpdateKeepsConnections(t *testing.T) {
	a, b := taggedEcho(t, "a:"), taggedEcho(t, "b:")
	m, _ := newManager(t)
	cfg := func(target string) *config.Config {
		return &config.Config{
			Listeners: map[string]*config.Listener{"l": {Name: "l", Address: "127.0.0.1:0", TCP: &config.TCPProxy{Cluster: target}}},
			Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a), "b": clusterAt("b", b)},
		}
	}
	if err := m.Apply(cfg("a")); err != nil {
		t.Fatal(err)
	}
	addr := m.Addr("l").String()
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c, bufio.NewReader(c)
	}
	say := func(c net.Conn, br *bufio.Reader, want string) {
		t.Helper()
		io.WriteString(c, "hi\n")
		if got, err := br.ReadString('\n'); err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	old, oldR := dial()
	say(old, oldR, "a:hi\n")
	if err := m.Apply(cfg("b")); err != nil {
		t.Fatal(err)
	}
	if got := m.Addr("l").String(); got != addr {
		t.Fatalf("socket moved from %s to %s", addr, got)
	}
	say(old, oldR, "a:hi\n") // the open connection keeps its upstream
	fresh, freshR := dial()
	say(fresh, freshR, "b:hi\n") // new connections use the new cluster
}

// TestClientGoneCancelsUpstream: a client closing its connection while its
// request is forwarded ends the upstream request (the downstream server
// tells the proxy through the request's context).
func TestClientGoneCancelsUpstream(t *testing.T) {
	arrived := make(chan struct{})
	ended := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
		close(ended)
	}))
	t.Cleanup(up.Close)
	m, _ := newManager(t)
	if err := m.Apply(&config.Config{Listeners: map[string]*config.Listener{"web": httpLn("web", "127.0.0.1:0", "r")},
		Routes: map[string]*config.RouteConfig{"r": routeTo("r", "a")}, Clusters: map[string]*config.Cluster{"a": clusterAt("a", up.Listener.Addr().String())}}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", m.Addr("web").String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the upstream")
	}
	c.Close()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream request still running 10 s after the client left")
	}
}
