package discovery

import (
	"cmp"
	"slices"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// nonPassing are the check statuses the watcher follows, one blocking query
// each (/v1/health/state/<status>). Every other check is passing (or
// absent, which aggregates the same way).
var nonPassing = []string{api.HealthCritical, api.HealthWarning}

// statusChecks is one /v1/health/state/<status> response.
type statusChecks struct {
	status string
	list   api.HealthChecks
}

type checkKey struct{ node, id string }

func compareKeys(a, b checkKey) int {
	return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.id, b.id))
}

type checkState struct{ serviceID, serviceName string }

// checkSet is one non-passing status's checks as its watch last returned
// them.
//
// Consul's blocking query on /v1/health/state/<status> wakes when a check
// enters, leaves or changes within that status (its memdb watch is on the
// status index) and answers with the checks table's index, so the set is
// current until the next response, and index is the state it shows.
type checkSet struct {
	status string
	seen   bool
	index  uint64
	checks map[checkKey]checkState
	// byService holds each service's service-level checks in the set;
	// byNode each node's node-level checks.
	byService map[string][]checkKey
	byNode    map[string][]checkKey
	// unverified holds the services fetched at an index above this set's:
	// they are compared with the set once a response catches up (see
	// verify).
	unverified map[string]bool
}

func newCheckSet(status string) *checkSet {
	return &checkSet{status: status, checks: map[checkKey]checkState{}, unverified: map[string]bool{}}
}

func (s *checkSet) replace(list api.HealthChecks, index uint64) {
	s.checks = make(map[checkKey]checkState, len(list))
	s.byService = map[string][]checkKey{}
	s.byNode = map[string][]checkKey{}
	for _, c := range list {
		// The endpoint returns only checks in s.status; a check in any
		// other status cannot count towards this set.
		if c == nil || c.Status != s.status {
			continue
		}
		k := checkKey{c.Node, c.CheckID}
		s.checks[k] = checkState{serviceID: c.ServiceID, serviceName: c.ServiceName}
		if c.ServiceID == "" {
			s.byNode[c.Node] = append(s.byNode[c.Node], k)
		} else {
			s.byService[c.ServiceName] = append(s.byService[c.ServiceName], k)
		}
	}
	s.index = index
}

// fetchedHealth is what a service's last fetch said about its checks.
type fetchedHealth struct {
	// index is the fetch's X-Consul-Index: the service's last write,
	// instances or checks (a node check's write moves the index of every
	// service on the node).
	index uint64
	nodes []string
	// nonPassing maps a status to the checks in it, service and node
	// checks alike.
	nonPassing map[string]map[checkKey]bool
	// serviceChecks lists the service-level checks (any status), sorted:
	// what a probe of every check compares (see onProbe).
	serviceChecks []checkKey
	// checkLess: an instance had no service-level check (or there was no
	// instance). A probe of every check cannot see such instances come or
	// go, so every probe refetches these services (see onProbe).
	checkLess bool
}

func healthOf(index uint64, entries []*api.ServiceEntry) *fetchedHealth {
	h := &fetchedHealth{index: index}
	for _, e := range entries {
		if !validEntry(e) {
			continue
		}
		if !slices.Contains(h.nodes, e.Node.Node) {
			h.nodes = append(h.nodes, e.Node.Node)
		}
		if !slices.ContainsFunc(e.Checks, func(c *api.HealthCheck) bool { return c != nil && c.ServiceID != "" }) {
			h.checkLess = true
		}
		for _, c := range e.Checks {
			if c == nil {
				continue
			}
			k := checkKey{c.Node, c.CheckID}
			if c.ServiceID != "" {
				h.serviceChecks = append(h.serviceChecks, k)
			}
			if c.Status == api.HealthCritical || c.Status == api.HealthWarning {
				if h.nonPassing == nil {
					h.nonPassing = map[string]map[checkKey]bool{}
				}
				if h.nonPassing[c.Status] == nil {
					h.nonPassing[c.Status] = map[checkKey]bool{}
				}
				h.nonPassing[c.Status][k] = true
			}
		}
	}
	slices.SortFunc(h.serviceChecks, compareKeys)
	if len(h.nodes) == 0 {
		h.checkLess = true
	}
	return h
}

// onChecks takes one non-passing set's response. The services whose
// checks entered, left or changed in the set are fetched: a check that
// left a non-passing set became passing (or was deregistered, or moved to
// the other non-passing status), and the fetch shows which. Passing checks
// are never read: a new instance comes with a catalog move (see explain
// and probe) and a passing check added or removed does not change health.
func (l *loop) onChecks(u update[statusChecks]) {
	s := l.sets[u.value.status]
	old := s.checks
	first := !s.seen
	s.replace(u.value.list, u.index)
	s.seen = true
	if first {
		// The first read is covered by the initial full fetch; services
		// fetched before it are compared with it now.
		for name := range l.health {
			s.unverified[name] = true
		}
		l.markDirty(time.Now())
	} else {
		nodes := map[string]bool{}
		affect := func(k checkKey, c checkState) {
			if c.serviceID == "" {
				nodes[k.node] = true // a node check: every service on the node
			} else if _, ok := l.catalog[c.serviceName]; ok {
				l.markPending(c.serviceName)
			}
		}
		for k, c := range s.checks {
			if o, ok := old[k]; !ok || o != c {
				affect(k, c)
			}
		}
		for k, c := range old {
			if _, ok := s.checks[k]; !ok {
				affect(k, c)
			}
		}
		if len(nodes) > 0 {
			for name, p := range l.b.services {
				for _, inst := range p.instances {
					if nodes[inst.Node] {
						l.markPending(name)
						break
					}
				}
			}
		}
	}
	for name := range s.unverified {
		l.verify(s, name)
	}
}

// verify compares what service name's last fetch showed in status
// s.status with what the set shows, and refetches the service when the
// fetch is the older of the two.
//
// This is what makes the diffs of consecutive responses enough. A fetch
// can land between two responses showing a state neither shows (a check
// passing → critical → passing in between: both responses agree, no diff
// names the service, and the snapshot would keep "critical"), or, from a
// lagging server, a state older than the response that named the
// service. The fetch's index f is the service's last write as of the
// fetch. If f ≤ s.index, the fetch cannot be newer than the set for this
// service: either it read at or after s.index, and then nothing was
// written to the service between s.index and the read, so both show the
// same; or it read before, and a disagreement means it is stale. If f >
// s.index the fetch saw a write after the set's state: should it disagree,
// the status's checks changed after s.index, which wakes the set's
// blocking query, and the comparison waits for that response.
func (l *loop) verify(s *checkSet, name string) {
	h := l.health[name]
	if h == nil {
		delete(s.unverified, name)
		return
	}
	if !s.seen || h.index > s.index {
		s.unverified[name] = true
		return
	}
	delete(s.unverified, name)
	want := h.nonPassing[s.status]
	n, same := 0, true
	count := func(keys []checkKey) {
		for _, k := range keys {
			n++
			if !want[k] {
				same = false
			}
		}
	}
	count(s.byService[name])
	for _, node := range h.nodes {
		count(s.byNode[node])
	}
	if same && n == len(want) {
		return
	}
	mark := mismatch{status: s.status, fetch: h.index, set: s.index}
	if l.mismatches[name] == mark {
		// Already refetched for this very pair and Consul answered the
		// same: a disagreement the rule above cannot settle (it would
		// otherwise refetch on every response). The next write to the
		// service or the set tries again.
		return
	}
	l.mismatches[name] = mark
	l.log.Debug(msgVerifyRefetch,
		zap.String("service", name), zap.String("status", s.status),
		zap.Uint64("fetch_index", h.index), zap.Uint64("checks_index", s.index))
	l.markPending(name)
}

// msgVerifyRefetch is logged (debug) when verify refetches a service.
const msgVerifyRefetch = "service fetch disagrees with the non-passing checks, refetching"

// mismatch is a verify disagreement that caused a refetch.
type mismatch struct {
	status     string
	fetch, set uint64
}

// setFetched records a service's fetch for verify and probe, and compares
// it with both non-passing sets.
func (l *loop) setFetched(name string, index uint64, entries []*api.ServiceEntry) {
	if len(entries) == 0 {
		l.forgetFetched(name)
		return
	}
	l.health[name] = healthOf(index, entries)
	for _, s := range l.sets {
		l.verify(s, name)
	}
}

func (l *loop) forgetFetched(name string) {
	delete(l.health, name)
	delete(l.mismatches, name)
	for _, s := range l.sets {
		delete(s.unverified, name)
	}
}

func (l *loop) checksSeen() bool {
	for _, s := range l.sets {
		if !s.seen {
			return false
		}
	}
	return true
}

func (l *loop) checksIndex() uint64 {
	var idx uint64
	for _, s := range l.sets {
		idx = max(idx, s.index)
	}
	return idx
}
