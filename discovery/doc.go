// Package discovery watches Consul and keeps an immutable mesh model
// (package mesh) current.
//
// API contract (used by the control plane):
//
//	w := discovery.NewWatcher(client, discovery.Options{...}, logger)
//	go w.Run(ctx)                 // returns when ctx is done
//	snap := w.Current()           // newest *mesh.Snapshot, nil before the first
//	ch, cancel := w.Subscribe()   // ch (capacity 1) is signalled after each publish
//	defer cancel()
//
// Subscribers read Current() when signalled; a slow subscriber only misses
// intermediate snapshots, it never blocks the watcher.
package discovery
