package listener

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestSlowHeadersAreCut: a client that never finishes its request headers
// loses its connection after the connection manager's stream idle timeout
// (or request_timeout, when shorter).
func TestSlowHeadersAreCut(t *testing.T) {
	tests := []struct {
		name string
		hcm  config.HTTPConnectionManager
	}{
		{"stream_idle_timeout", config.HTTPConnectionManager{RouteConfigName: "r", StreamIdleTimeout: 200 * time.Millisecond}},
		{"request_timeout shorter", config.HTTPConnectionManager{RouteConfigName: "r", StreamIdleTimeout: time.Hour, RequestTimeout: 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawConn(t, tt.hcm)
			start := time.Now()
			io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			_, err := io.ReadAll(conn) // returns when the proxy closes
			if err != nil {
				t.Fatalf("connection still open after %v: %v", time.Since(start), err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("closed after %v, want about 200 ms", d)
			}
		})
	}
}

// rawConn opens one HTTP listener with hcm (routes to a cluster nobody
// serves) and returns a raw connection to it, closed at cleanup, with a
// 5 s deadline: for tests that write bytes a client library would not.
func rawConn(t *testing.T, hcm config.HTTPConnectionManager) net.Conn {
	t.Helper()
	m, _ := newManager(t)
	err := m.Apply(&config.Config{
		Listeners: map[string]*config.Listener{"l": {Name: "l", Address: "127.0.0.1:0", HTTP: &hcm}},
		Routes:    map[string]*config.RouteConfig{"r": routeTo("r", "c")},
		Clusters:  map[string]*config.Cluster{"c": clusterAt("c", "127.0.0.1:1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", m.Addr("l").String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn
}
