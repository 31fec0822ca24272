package discovery

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/seed-a778acb4/consulate/discovery/mesh"
)

// entryKinds are the config entry kinds the watcher follows, one blocking
// query each.
var entryKinds = []mesh.EntryKind{
	mesh.KindProxyDefaults,
	mesh.KindServiceDefaults,
	mesh.KindServiceRouter,
	mesh.KindServiceSplitter,
	mesh.KindServiceResolver,
}

// Watcher keeps a mesh.Snapshot of Consul current. See the package
// documentation for its design and concurrency contract.
type Watcher struct {
	client *api.Client
	opts   Options
	log    *zap.Logger

	running atomic.Bool
	current atomic.Pointer[mesh.Snapshot]

	subMu  sync.Mutex
	subs   map[int]chan struct{}
	nextID int
}

// NewWatcher returns a watcher of the Consul reached by client. Nothing
// happens before Run.
func NewWatcher(client *api.Client, opts Options, log *zap.Logger) *Watcher {
	if log == nil {
		log = zap.NewNop()
	}
	return &Watcher{
		client: client,
		opts:   opts.withDefaults(),
		log:    log.Named("discovery"),
		subs:   map[int]chan struct{}{},
	}
}

// Current returns the newest snapshot, or nil before the first one (which
// is published once the catalog, health and every config entry kind have
// been read and every service fetched).
func (w *Watcher) Current() *mesh.Snapshot { return w.current.Load() }

// Subscribe returns a channel (capacity 1) that is signalled after each
// publish, and a func that unsubscribes. When a snapshot already exists the
// channel starts signalled. A subscriber that does not keep up misses
// intermediate signals, never the newest snapshot: read Current() on each
// signal.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.subMu.Lock()
	id := w.nextID
	w.nextID++
	w.subs[id] = ch
	w.subMu.Unlock()
	if w.Current() != nil {
		signal(ch)
	}
	return ch, func() {
		w.subMu.Lock()
		delete(w.subs, id)
		w.subMu.Unlock()
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default: // already signalled: the subscriber will read the newest.
	}
}

// publish makes snap current and signals every subscriber without
// blocking.
func (w *Watcher) publish(snap *mesh.Snapshot) {
	w.current.Store(snap)
	w.subMu.Lock()
	defer w.subMu.Unlock()
	for _, ch := range w.subs {
		signal(ch)
	}
}

// Run watches Consul until ctx is done, then returns nil once every
// goroutine it started has ended. It may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("discovery: Watcher.Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	l := newLoop(w, ctx, &wg)
	wg.Go(func() {
		watch(ctx, w.opts, sourceCatalog, w.client.Catalog().Services, l.catalogCh, l.errCh)
	})
	for _, status := range nonPassing {
		wg.Go(func() {
			watch(ctx, w.opts, checksSource(status), func(q *api.QueryOptions) (statusChecks, *api.QueryMeta, error) {
				list, meta, err := w.client.Health().State(status, q)
				return statusChecks{status: status, list: list}, meta, err
			}, l.checksCh, l.errCh)
		})
	}
	for _, kind := range entryKinds {
		wg.Go(func() {
			watch(ctx, w.opts, entriesSource(kind), func(q *api.QueryOptions) (kindEntries, *api.QueryMeta, error) {
				var list []RawEntry
				meta, err := w.client.Raw().Query("/v1/config/"+string(kind), &list, q)
				return kindEntries{kind: kind, list: list}, meta, err
			}, l.entriesCh, l.errCh)
		})
	}
	l.run()
	return nil
}
