package discovery

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// fetchBatch is a set of services to fetch, and what came back.
type fetchBatch struct {
	// since is when the oldest change behind this batch was seen; the
	// publish that follows the batch is timed from it.
	since time.Time
	names []string
	// Results, index-aligned with names; a nil error with no entries means
	// the service has no instances any more.
	entries [][]*api.ServiceEntry
	errs    []error
	// indexes holds each fetch's X-Consul-Index (Consul's per-service
	// index: the service's last write, instances or checks), 0 on error.
	indexes []uint64
	// maxIndex is the highest X-Consul-Index among the successful fetches.
	maxIndex uint64
}

// fetchServices fetches every service of b with at most concurrency
// requests in flight (non-blocking /v1/health/service/<name> queries, all
// instances with node and checks), then sends b to done. All its goroutines
// have returned when it returns.
func fetchServices(ctx context.Context, client *api.Client, concurrency int, b *fetchBatch, done chan<- *fetchBatch) {
	b.entries = make([][]*api.ServiceEntry, len(b.names))
	b.errs = make([]error, len(b.names))
	b.indexes = make([]uint64, len(b.names))
	indexes := b.indexes
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(concurrency, len(b.names)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(b.names) {
					return
				}
				if err := ctx.Err(); err != nil {
					b.errs[i] = err
					continue
				}
				qctx, cancel := context.WithTimeout(ctx, requestMargin)
				q := (&api.QueryOptions{}).WithContext(qctx)
				entries, meta, err := client.Health().Service(b.names[i], "", false, q)
				cancel()
				if err != nil {
					b.errs[i] = err
					continue
				}
				b.entries[i] = entries
				indexes[i] = meta.LastIndex
			}
		})
	}
	wg.Wait()
	for _, idx := range indexes {
		b.maxIndex = max(b.maxIndex, idx)
	}
	select {
	case done <- b:
	case <-ctx.Done():
	}
}
