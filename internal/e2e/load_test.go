package e2e

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"sync"
	"testing"
	"time"
)

// load sends paced GETs to one URL from one goroutine until stopped, and
// counts what came back.
type load struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ok, fail int
	failures []string       // the first few, for the error message
	kinds    map[string]int // every failure by its text
	// firstFail and lastFail bound the failures in time.
	firstFail, lastFail time.Time
}

// loadPace is the time between requests: ~100 requests a second, enough
// to hit every failure window, light on a shared machine.
const loadPace = 10 * time.Millisecond

func startLoad(t *testing.T, url string) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	l := &load{url: url, cancel: cancel, done: make(chan struct{}), kinds: map[string]int{}}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(loadPace)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.record(ctx, client)
		}
	}()
	t.Cleanup(l.stop)
	return l
}

func (l *load) record(ctx context.Context, client *http.Client) {
	failure := ""
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	resp, err := client.Do(req)
	switch {
	case ctx.Err() != nil:
		return // stopping: not the mesh's failure
	case err != nil:
		failure = err.Error()
	default:
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failure = fmt.Sprintf("%d %.100s", resp.StatusCode, body)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if failure == "" {
		l.ok++
		return
	}
	l.fail++
	l.kinds[failure]++
	now := time.Now()
	if l.firstFail.IsZero() {
		l.firstFail = now
	}
	l.lastFail = now
	if len(l.failures) < 5 {
		l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+failure)
	}
}

// snapshot returns the counts so far.
func (l *load) snapshot() (ok, fail int, failures []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.fail, append([]string(nil), l.failures...)
}

// failureKinds returns every failure so far by its text.
func (l *load) failureKinds() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.kinds)
}

// failWindow returns when the first and the last failure happened (zero
// times if none did).
func (l *load) failWindow() (first, last time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstFail, l.lastFail
}

// stop ends the loop and waits for it.
func (l *load) stop() {
	l.cancel()
	<-l.done
}

// waitOK waits until the load has at least n more successes than now.
func (l *load) waitOK(t *testing.T, n int, within time.Duration) {
	t.Helper()
	start, _, _ := l.snapshot()
	ctx, cancel := context.WithTimeout(t.Context(), within)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, fail, failures := l.snapshot()
		if ok-start >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d successful requests within %s, want %d (failures %d: %q)", ok-start, within, n, fail, failures)
		case <-tick.C:
		}
	}
}

// get sends one GET and returns the status and body (0 on a transport error).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
