package e2e

import (
	"io"
	"net/http"
	"testing"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

// BenchmarkHTTPThroughTwoSidecars: one GET from a client through web's
// sidecar (outbound listener) and api's sidecar (public listener) to an
// in-test app and back, over keep-alive connections: the mesh's added
// latency with real processes on loopback. allocs/op counts only this
// process (the client and the app), not the sidecars.
func BenchmarkHTTPThroughTwoSidecars(b *testing.B) {
	f := newFixture(b)
	web, api := f.pair(b)
	url := web.upstreamURL()
	newClient := func() *http.Client {
		return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	}
	// do reports with Error, not Fatal: RunParallel's goroutines may not
	// call FailNow.
	do := func(b *testing.B, c *http.Client, url string) bool {
		resp, err := c.Get(url)
		if err != nil {
			b.Error(err)
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Errorf("status %d", resp.StatusCode)
			return false
		}
		return true
	}
	// direct is the baseline: the same app without the mesh.
	b.Run("direct", func(b *testing.B) {
		c := newClient()
		b.ReportAllocs()
		for b.Loop() {
			if !do(b, c, "http://"+launch.Addr(api.AppPort)+"/") {
				return
			}
		}
	})
	b.Run("sequential", func(b *testing.B) {
		c := newClient()
		b.ReportAllocs()
		for b.Loop() {
			if !do(b, c, url) {
				return
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		c := newClient()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if !do(b, c, url) {
					return
				}
			}
		})
	})
}
