package xds

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestTranslationIsPureAndConcurrent: many goroutines translate one shared
// snapshot at once (run with -race) and the snapshot is unchanged after,
// as doc.go promises; every goroutine gets the same versions.
func TestTranslationIsPureAndConcurrent(t *testing.T) {
	snap := testMesh()
	setProtocol(snap, "api", "http")
	want, err := ForSidecar(snap, testProxy)
	if err != nil {
		t.Fatal(err)
	}
	wantProxyless, err := ForProxyless(snap)
	if err != nil {
		t.Fatal(err)
	}

	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for range workers {
		wg.Go(func() {
			for range 20 {
				res, err := ForSidecar(snap, testProxy)
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(want.Versions(), res.Versions()); diff != "" {
					t.Errorf("sidecar versions differ between runs:\n%s", diff)
					return
				}
				pl, err := ForProxyless(snap)
				if err != nil {
					errs <- err
					return
				}
				if diff := cmp.Diff(wantProxyless.Versions(), pl.Versions()); diff != "" {
					t.Errorf("proxyless versions differ between runs:\n%s", diff)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	pristine := testMesh()
	setProtocol(pristine, "api", "http")
	if diff := cmp.Diff(pristine, snap); diff != "" {
		t.Errorf("translation changed the snapshot (-before +after):\n%s", diff)
	}
}
