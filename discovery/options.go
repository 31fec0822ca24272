package discovery

import "time"

// Options tune a Watcher. The zero value is usable: every zero field takes
// the default documented on it.
type Options struct {
	// Coalesce is the window that batches bursts of Consul changes into one
	// rebuild: at most one snapshot is published per window, and a change
	// is published at the latest about one window (plus fetch time) after
	// Consul reported it; the first change after a quiet window is fetched
	// and published at once. It also spaces consecutive blocking queries of
	// one watch (Consul's "rate limit" guidance). Default 150ms.
	Coalesce time.Duration
	// WaitTime is the longest a blocking query waits (Consul caps it at
	// 10m). Default 5m.
	WaitTime time.Duration
	// FetchConcurrency bounds the targeted per-service fetches in flight.
	// Default 8.
	FetchConcurrency int
	// MinBackoff and MaxBackoff bound the jittered exponential back-off
	// after a failed query. Defaults 100ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// Resync is the period of a full refetch of every service, a safety net
	// for catalog changes the watches cannot attribute (see doc.go).
	// Default 10m; negative disables it.
	Resync time.Duration
	// Datacenter names the local datacenter in snapshots. Default: the
	// datacenter Consul reports on the fetched nodes.
	Datacenter string
}

func (o Options) withDefaults() Options {
	if o.Coalesce <= 0 {
		o.Coalesce = 150 * time.Millisecond
	}
	if o.WaitTime <= 0 {
		o.WaitTime = 5 * time.Minute
	}
	if o.FetchConcurrency <= 0 {
		o.FetchConcurrency = 8
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.Resync == 0 {
		o.Resync = 10 * time.Minute
	}
	return o
}
