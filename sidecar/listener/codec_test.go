package listener

import (
	"net"
	"net/http"
	"testing"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestCodecType: codec_type AUTO serves HTTP/1.1 and h2c on one port,
// HTTP1 only HTTP/1.x, HTTP2 only h2c; changing it replaces the listener
// on the same address.
func TestCodecType(t *testing.T) {
	a := named(t, "a", nil)
	m, _ := newManager(t)
	h1 := client(t)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	h2 := &http.Client{Transport: tr}

	// One fixed address for every config (":0" would be a new address
	// each time, not a change of codec on the same one).
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	for _, tt := range []struct {
		codec      config.Codec
		h1ok, h2ok bool
	}{
		{config.CodecAuto, true, true},
		{config.CodecHTTP1, true, false},
		{config.CodecHTTP2, false, true},
		{config.CodecAuto, true, true},
	} {
		ln := httpLn("web", addr, "r")
		ln.HTTP.Codec = tt.codec
		if err := m.Apply(&config.Config{
			Listeners: map[string]*config.Listener{"web": ln},
			Routes:    map[string]*config.RouteConfig{"r": routeTo("r", "a")},
			Clusters:  map[string]*config.Cluster{"a": clusterAt("a", a)},
		}); err != nil {
			t.Fatal(err)
		}
		url := "http://" + addr + "/"
		// Connections of the listener before were drained with it.
		h1.CloseIdleConnections()
		tr.CloseIdleConnections()
		body, _, err := fetch(t, h1, url)
		if ok := err == nil && body == "a"; ok != tt.h1ok {
			t.Errorf("codec %d: HTTP/1.1 request: %q %v, want served=%v", tt.codec, body, err, tt.h1ok)
		}
		body, _, err = fetch(t, h2, url)
		if ok := err == nil && body == "a"; ok != tt.h2ok {
			t.Errorf("codec %d: h2c request: %q %v, want served=%v", tt.codec, body, err, tt.h2ok)
		}
	}
}
