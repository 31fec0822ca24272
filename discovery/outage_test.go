package discovery

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// observedLogger logs to the test and records entries at level and above.
func observedLogger(t *testing.T, level zapcore.Level) (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(level)
	return zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core())), logs
}

// TestWatcherKeepsSnapshotWhileConsulIsDown stops the agent under a running
// watcher: the last snapshot stays and a warning says since when; after a
// restart (a -dev agent: empty raft store, indexes start over) changes flow
// again. The client is built with NewClient's configuration and an address
// override, as the control plane builds it.
func TestWatcherKeepsSnapshotWhileConsulIsDown(t *testing.T) {
	a := consultest.Start(t)
	cfg := ClientConfig{Address: "http://" + a.HTTPAddr}.APIConfig()
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	log, logs := observedLogger(t, zap.InfoLevel)
	w := startWatcher(t, client, Options{Coalesce: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, log)

	if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "before-1", Name: "before", Port: 1}); err != nil {
		t.Fatal(err)
	}
	waitSnapshot(t, w, 10*time.Second, "before", func(s *mesh.Snapshot) bool { return s.Service("before") != nil })

	// Move the catalog index well past where the restarted agent will
	// start, so that after the restart Consul's indexes are lower than the
	// ones the watches last saw.
	for i := range 30 {
		id := fmt.Sprintf("churn-%d", i)
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "churn", Port: i + 1}); err != nil {
			t.Fatal(err)
		}
		if err := a.Client.Agent().ServiceDeregister(id); err != nil {
			t.Fatal(err)
		}
	}
	waitSnapshot(t, w, 10*time.Second, "churn gone", func(s *mesh.Snapshot) bool { return s.Service("churn") == nil && s.Index > 40 })
	indexBefore := w.Current().Index

	down := time.Now()
	a.Stop()
	const warning = msgUnreachable
	waitUntil(t, 10*time.Second, "unreachable warning", func() bool { return logs.FilterMessage(warning).Len() > 0 })
	entry := logs.FilterMessage(warning).All()[0]
	if entry.Level != zapcore.WarnLevel {
		t.Errorf("level = %s, want warn", entry.Level)
	}
	since, ok := entry.ContextMap()["unreachable_since"].(time.Time)
	if !ok || since.Before(down) || time.Since(since) > time.Minute {
		t.Errorf("unreachable_since = %v (%T), want a time after %v", entry.ContextMap()["unreachable_since"], entry.ContextMap()["unreachable_since"], down)
	}
	if s := w.Current(); s == nil || s.Service("before") == nil {
		t.Fatalf("snapshot lost while Consul is down: %s", describe(s))
	}

	a.Restart()
	if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "after-1", Name: "after", Port: 2}); err != nil {
		t.Fatal(err)
	}
	// The -dev agent's raft store started empty (its index starts over);
	// the agent re-registers "before" from its data directory.
	s := waitSnapshot(t, w, 20*time.Second, "after", func(s *mesh.Snapshot) bool { return s.Service("after") != nil })
	t.Logf("index %d before the restart, %d after", indexBefore, s.Index)
	// Said once every query has succeeded again (some may still be in
	// back-off when the first changes flow).
	waitUntil(t, 10*time.Second, "log saying Consul is reachable again", func() bool {
		return logs.FilterMessage("consul reachable again").Len() > 0
	})
}

// TestWatcherCoalescesBurst registers 500 services as fast as the agent
// takes them and counts the snapshots published meanwhile (default
// coalescing window).
//
// It also counts the watcher's concurrent HTTP requests: a fixed handful
// of watches plus the bounded fetches, however many services there are
// (Consul caps connections per client IP at 200).
func TestWatcherCoalescesBurst(t *testing.T) {
	a := consultest.Start(t)
	log, logs := observedLogger(t, zap.DebugLevel)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DisableKeepAlives = true // no idle connections left for goleak
	counter := &countingTransport{next: transport}
	cfg := api.DefaultNonPooledConfig()
	cfg.Address = a.HTTPAddr
	cfg.HttpClient = &http.Client{Transport: counter}
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := startWatcher(t, client, Options{}, log)
	waitSnapshot(t, w, 20*time.Second, "first snapshot", func(s *mesh.Snapshot) bool { return s.Service("consul") != nil })
	published := func() int { return logs.FilterMessageSnippet("snapshot published").Len() }
	before := published()

	const n, workers = 500, 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for k := range workers {
		wg.Go(func() {
			for i := k; i < n; i += workers {
				reg := &api.AgentServiceRegistration{ID: fmt.Sprintf("burst-%03d-1", i), Name: fmt.Sprintf("burst-%03d", i), Port: 10000 + i}
				if err := a.Client.Agent().ServiceRegister(reg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	start := time.Now()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("register: %v", err)
	}
	registered := time.Since(start)
	waitSnapshot(t, w, 30*time.Second, "all 500 services", func(s *mesh.Snapshot) bool {
		count := 0
		for name := range s.Services {
			if len(name) == len("burst-000") && name[:6] == "burst-" {
				count++
			}
		}
		return count == n
	})
	got := published() - before
	t.Logf("%d registrations in %s gave %d snapshots; at most %d concurrent requests", n, registered, got, counter.max.Load())
	if got >= 50 {
		t.Errorf("%d snapshots for %d registrations, want < 50", got, n)
	}
	// 8 blocking queries + 8 fetches + 1 probe.
	if want := int64(1 + len(nonPassing) + len(entryKinds) + 8 + 1); counter.max.Load() > want {
		t.Errorf("%d concurrent requests to Consul, want at most %d", counter.max.Load(), want)
	}
}

// countingTransport records the most requests it ever had in flight.
type countingTransport struct {
	next     http.RoundTripper
	inflight atomic.Int64
	max      atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.inflight.Add(1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	resp, err := c.next.RoundTrip(r)
	if err != nil {
		c.inflight.Add(-1)
		return nil, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, done: func() { c.inflight.Add(-1) }}
	return resp, nil
}

// countedBody ends a request's count when its body is closed.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *countedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}

// TestWatcherStartsBeforeConsul: with Consul down from the start there is
// no snapshot and a warning; once it is up the first snapshot follows.
func TestWatcherStartsBeforeConsul(t *testing.T) {
	a := consultest.Start(t)
	a.Stop()
	log, logs := observedLogger(t, zap.InfoLevel)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond}, log)
	waitUntil(t, 10*time.Second, "unreachable warning", func() bool {
		return logs.FilterMessage(msgUnreachableNoSnapshot).Len() > 0
	})
	if s := w.Current(); s != nil {
		t.Fatalf("a snapshot without Consul: %s", describe(s))
	}
	a.Restart()
	waitSnapshot(t, w, 20*time.Second, "first snapshot", func(s *mesh.Snapshot) bool { return s.Service("consul") != nil })
}
