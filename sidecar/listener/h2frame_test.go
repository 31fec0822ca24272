package listener

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// TestH2CFrameLargerThanDefaultIsRefused: a HEADERS frame over 16 KiB (the
// SETTINGS_MAX_FRAME_SIZE the sidecar never raises, as Envoy's codec) is a
// connection error FRAME_SIZE_ERROR (RFC 9113 section 4.2), which h2spec
// checks (4.2/3); Go's default would read frames of up to 1 MiB.
func TestH2CFrameLargerThanDefaultIsRefused(t *testing.T) {
	conn := rawConn(t, config.HTTPConnectionManager{RouteConfigName: "r", StreamIdleTimeout: time.Minute})
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The server's SETTINGS must not offer more than the default.
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingMaxFrameSize); ok && v > 16384 {
		t.Errorf("server advertises SETTINGS_MAX_FRAME_SIZE %d, want at most 16384", v)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/"}, {Name: ":authority", Value: "x"}} {
		enc.WriteField(hf)
	}
	for block.Len() <= 16384 {
		enc.WriteField(hpack.HeaderField{Name: "x-pad", Value: string(bytes.Repeat([]byte("a"), 1000)), Sensitive: true})
	}
	fr.SetMaxReadFrameSize(1 << 20)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("connection ended without GOAWAY FRAME_SIZE_ERROR: %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeFrameSize {
				t.Fatalf("GOAWAY %v, want FRAME_SIZE_ERROR", ga.ErrCode)
			}
			return
		}
		var se http2.StreamError
		if h, ok := f.(*http2.HeadersFrame); ok || errors.As(err, &se) {
			t.Fatalf("the oversized request was answered (%v), want GOAWAY FRAME_SIZE_ERROR", h)
		}
	}
}
