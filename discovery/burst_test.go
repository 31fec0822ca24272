package discovery

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestWatcherSeesCheckLessBurst registers 100 instances without checks at
// once: neither the tag sets nor the checks change after each service's
// first instance, only the catalog index moves, and the watcher must still
// end up with every instance (an e2e test once saw it stuck at ~40 of 100).
func TestWatcherSeesCheckLessBurst(t *testing.T) {
	tests := []struct {
		name     string
		services int
		// churn: another service's check changes status during the
		// burst, so fetches of it return ever higher indexes.
		churn bool
	}{
		{name: "one service", services: 1},
		{name: "ten services", services: 10},
		{name: "one service while a check changes", services: 1, churn: true},
		{name: "ten services while a check changes", services: 10, churn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := consultest.Start(t)
			w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, zaptest.NewLogger(t))
			waitSnapshot(t, w, 20*time.Second, "the consul service", func(s *mesh.Snapshot) bool { return s.Service("consul") != nil })

			stopChurn := func() {}
			if tt.churn {
				if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
					ID: "ticker-1", Name: "ticker", Port: 9999,
					Check: &api.AgentServiceCheck{CheckID: "ticker-ttl", TTL: "10m", Status: api.HealthPassing},
				}); err != nil {
					t.Fatalf("register ticker: %v", err)
				}
				done := make(chan struct{})
				var churn sync.WaitGroup
				churn.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-done:
							return
						case <-time.After(20 * time.Millisecond):
						}
						status := api.HealthPassing
						if i%2 == 0 {
							status = api.HealthWarning
						}
						_ = a.Client.Agent().UpdateTTL("ticker-ttl", "", status)
					}
				})
				stopChurn = func() { close(done); churn.Wait() }
			}
			const n, workers = 100, 100
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for k := range workers {
				wg.Go(func() {
					for i := k; i < n; i += workers {
						reg := &api.AgentServiceRegistration{
							ID:      fmt.Sprintf("burst-%03d", i),
							Name:    fmt.Sprintf("burst-%d", i%tt.services),
							Address: "127.0.0.1",
							Port:    20000 + i,
						}
						if err := a.Client.Agent().ServiceRegister(reg); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("register: %v", err)
			}
			count := func(s *mesh.Snapshot) int {
				c := 0
				for i := range tt.services {
					if svc := s.Service(fmt.Sprintf("burst-%d", i)); svc != nil {
						c += len(svc.Instances)
					}
				}
				return c
			}
			waitUntil(t, 10*time.Second, "all instances in the catalog", func() bool {
				c := 0
				for i := range tt.services {
					entries, _, err := a.Client.Health().Service(fmt.Sprintf("burst-%d", i), "", false, nil)
					if err != nil {
						return false
					}
					c += len(entries)
				}
				return c == n
			})
			stopChurn()
			ch, unsubscribe := w.Subscribe()
			defer unsubscribe()
			deadline := time.After(10 * time.Second)
			for {
				if s := w.Current(); s != nil && count(s) == n {
					return
				}
				select {
				case <-ch:
				case <-deadline:
					t.Fatalf("snapshot has %d of %d instances 10s after Consul listed them all", count(w.Current()), n)
				}
			}
		})
	}
}

// TestWatcherExplainsVisibleChanges: registrations with checks, check
// flaps and a deregistration are each explained by the targeted fetch of
// the service they name: none falls back to refetching every service
// (which costs one request per service name).
func TestWatcherExplainsVisibleChanges(t *testing.T) {
	a := consultest.Start(t)
	log, logs := observedLogger(t, zap.DebugLevel)
	w := startWatcher(t, a.Client, Options{Coalesce: 50 * time.Millisecond}, log)
	waitSnapshot(t, w, 20*time.Second, "the consul service", func(s *mesh.Snapshot) bool { return s.Service("consul") != nil })
	fallbacks := func() int {
		return logs.FilterField(zap.String("reason", "catalog changed without a visible diff")).Len()
	}

	for _, id := range []string{"api-1", "api-2"} {
		if err := a.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: id, Name: "api", Port: 8080,
			Check: &api.AgentServiceCheck{CheckID: id + "-ttl", TTL: "10m", Status: api.HealthPassing},
		}); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
		waitSnapshot(t, w, 10*time.Second, id, func(s *mesh.Snapshot) bool {
			return s.Service("api") != nil && instanceHealth(s, "api", id) == mesh.HealthPassing
		})
	}
	for _, status := range []string{api.HealthCritical, api.HealthPassing} {
		if err := a.Client.Agent().UpdateTTL("api-1-ttl", "", status); err != nil {
			t.Fatalf("update ttl: %v", err)
		}
		waitSnapshot(t, w, 10*time.Second, "api-1 "+status, func(s *mesh.Snapshot) bool {
			return s.Service("api") != nil && string(instanceHealth(s, "api", "api-1")) == status
		})
	}
	if err := a.Client.Agent().ServiceDeregister("api-2"); err != nil {
		t.Fatalf("deregister: %v", err)
	}
	waitSnapshot(t, w, 10*time.Second, "api-2 gone", func(s *mesh.Snapshot) bool {
		return s.Service("api") != nil && len(s.Service("api").Instances) == 1
	})
	// Leave the grace period of any unexplained move behind.
	time.Sleep(200 * time.Millisecond)
	if n := fallbacks(); n != 0 {
		t.Errorf("%d refetches of every service for changes a targeted fetch explains, want 0", n)
	}
}
