// Package launch starts and stops the real processes of a local mesh — a
// Consul dev agent, the control plane, sidecars and demo apps — for the
// demo runner (deploy/demo/run) and the end-to-end tests (internal/e2e).
//
// Every process runs in its own process group with its output in a log
// file; Stop signals the whole group (SIGTERM, then SIGKILL after a grace
// period) and waits for it, so nothing is left behind. Pdeathsig makes
// the kernel kill a child whose parent dies without cleaning up.
//
// Concurrency: a Process may be stopped from any goroutine, once or more;
// its waiter goroutine ends when the process exits. Wait helpers poll
// with a ticker until their context is done; none starts a goroutine that
// outlives its call.
package launch
