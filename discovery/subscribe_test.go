package discovery

import (
	"sync"
	"testing"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

func TestSubscribe(t *testing.T) {
	t.Run("slow subscriber never blocks the publisher and sees the newest", func(t *testing.T) {
		w := NewWatcher(nil, Options{}, nil)
		ch, cancel := w.Subscribe()
		defer cancel()
		for i := range 100 {
			w.publish(&mesh.Snapshot{Index: uint64(i)})
		}
		<-ch
		if got := w.Current().Index; got != 99 {
			t.Errorf("Current().Index = %d, want 99", got)
		}
		select {
		case <-ch:
			t.Errorf("a second signal was queued; want intermediate publishes folded into one")
		default:
		}
	})
	t.Run("late subscriber starts signalled", func(t *testing.T) {
		w := NewWatcher(nil, Options{}, nil)
		w.publish(&mesh.Snapshot{Index: 1})
		ch, cancel := w.Subscribe()
		defer cancel()
		select {
		case <-ch:
		default:
			t.Errorf("subscribing after a publish: no signal")
		}
	})
	t.Run("cancel stops signals", func(t *testing.T) {
		w := NewWatcher(nil, Options{}, nil)
		ch, cancel := w.Subscribe()
		cancel()
		w.publish(&mesh.Snapshot{})
		select {
		case <-ch:
			t.Errorf("signalled after cancel")
		default:
		}
	})
	t.Run("subscribers come and go while snapshots are published", func(t *testing.T) {
		w := NewWatcher(nil, Options{}, nil)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 200 {
					ch, cancel := w.Subscribe()
					select {
					case <-ch:
					default:
					}
					cancel()
				}
			})
		}
		for i := range 1000 {
			w.publish(&mesh.Snapshot{Index: uint64(i)})
		}
		wg.Wait()
		if got := w.Current().Index; got != 999 {
			t.Errorf("Current().Index = %d, want 999", got)
		}
	})
	t.Run("nothing before the first snapshot", func(t *testing.T) {
		w := NewWatcher(nil, Options{}, nil)
		if w.Current() != nil {
			t.Errorf("Current() before any publish = %v, want nil", w.Current())
		}
	})
}
