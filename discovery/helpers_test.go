package discovery

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// startWatcher runs a watcher for the test and stops it (waiting for Run to
// return) at cleanup.
func startWatcher(t *testing.T, client *api.Client, opts Options, log *zap.Logger) *Watcher {
	t.Helper()
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 500 * time.Millisecond
	}
	w := NewWatcher(client, opts, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return 10s after its context was cancelled")
		}
	})
	return w
}

// waitSnapshot waits (at most d) for a snapshot satisfying cond, reacting
// to each publish, and returns it.
func waitSnapshot(t *testing.T, w *Watcher, d time.Duration, what string, cond func(*mesh.Snapshot) bool) *mesh.Snapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	ch, unsubscribe := w.Subscribe()
	defer unsubscribe()
	for {
		if s := w.Current(); s != nil && cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no snapshot with %s within %s (last: %s)", what, d, describe(w.Current()))
		}
	}
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

func describe(s *mesh.Snapshot) string {
	if s == nil {
		return "none"
	}
	names := slices.Sorted(maps.Keys(s.Services))
	if len(names) > 20 {
		names = append(names[:20], "...")
	}
	var insts []string
	for _, name := range names {
		if svc := s.Services[name]; svc != nil && len(insts) < 20 {
			for _, inst := range svc.Instances {
				insts = append(insts, inst.ID+"="+string(inst.Health))
			}
		}
	}
	return fmt.Sprintf("index %d, services %s, instances %s, config errors %v", s.Index, strings.Join(names, ","), strings.Join(insts, ","), s.Config.Errors)
}
