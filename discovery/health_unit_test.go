package discovery

import (
	"testing"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"
)

// TestVerifyRule pins verify's rule without Consul: a fetch at or below
// the set's index that disagrees with it is refetched (once per pair of
// indexes); one above it waits for the set's next response.
func TestVerifyRule(t *testing.T) {
	critical := func(node, id, svcID, svc string) *api.HealthCheck {
		return &api.HealthCheck{Node: node, CheckID: id, Status: api.HealthCritical, ServiceID: svcID, ServiceName: svc}
	}
	entry := func(node, id string, checks ...*api.HealthCheck) *api.ServiceEntry {
		return &api.ServiceEntry{Node: &api.Node{Node: node}, Service: &api.AgentService{ID: id, Service: "web"}, Checks: checks}
	}
	tests := []struct {
		name        string
		setIndex    uint64
		set         api.HealthChecks
		fetchIndex  uint64
		entries     []*api.ServiceEntry
		wantPending bool
		wantWaiting bool
	}{
		{name: "agree, both passing", setIndex: 10, fetchIndex: 9,
			entries: []*api.ServiceEntry{entry("n1", "web-1")}},
		{name: "agree, both critical", setIndex: 10, fetchIndex: 10,
			set:     api.HealthChecks{critical("n1", "c1", "web-1", "web")},
			entries: []*api.ServiceEntry{entry("n1", "web-1", critical("n1", "c1", "web-1", "web"))}},
		{name: "fetch older, shows critical the set no longer has", setIndex: 10, fetchIndex: 8,
			entries:     []*api.ServiceEntry{entry("n1", "web-1", critical("n1", "c1", "web-1", "web"))},
			wantPending: true},
		{name: "fetch older, misses a critical check", setIndex: 10, fetchIndex: 8,
			set:         api.HealthChecks{critical("n1", "c1", "web-1", "web")},
			entries:     []*api.ServiceEntry{entry("n1", "web-1")},
			wantPending: true},
		{name: "fetch older, misses a critical node check", setIndex: 10, fetchIndex: 8,
			set:         api.HealthChecks{critical("n1", "disk", "", "")},
			entries:     []*api.ServiceEntry{entry("n1", "web-1")},
			wantPending: true},
		{name: "node check on another node", setIndex: 10, fetchIndex: 8,
			set:     api.HealthChecks{critical("n2", "disk", "", "")},
			entries: []*api.ServiceEntry{entry("n1", "web-1")}},
		{name: "fetch newer than the set: wait for its next response", setIndex: 10, fetchIndex: 12,
			set:         api.HealthChecks{critical("n1", "c1", "web-1", "web")},
			entries:     []*api.ServiceEntry{entry("n1", "web-1")},
			wantWaiting: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLoop(NewWatcher(nil, Options{}, zap.NewNop()), t.Context(), nil)
			l.catalog["web"] = nil
			s := l.sets[api.HealthCritical]
			s.replace(tt.set, tt.setIndex)
			s.seen = true
			l.setFetched("web", tt.fetchIndex, tt.entries)
			if got := l.pending["web"]; got != tt.wantPending {
				t.Errorf("refetch = %v, want %v", got, tt.wantPending)
			}
			if got := s.unverified["web"]; got != tt.wantWaiting {
				t.Errorf("waiting for the set = %v, want %v", got, tt.wantWaiting)
			}
			if tt.wantWaiting {
				// The set's next response, same content, catches up with
				// the fetch: the disagreement now means a refetch.
				l.onChecks(update[statusChecks]{value: statusChecks{status: api.HealthCritical, list: tt.set}, index: tt.fetchIndex + 1})
				if !l.pending["web"] || s.unverified["web"] {
					t.Errorf("after the set caught up: refetch = %v, still waiting = %v; want a refetch", l.pending["web"], s.unverified["web"])
				}
			}
			if tt.wantPending {
				// Consul answers the same again: no second refetch.
				clear(l.pending)
				l.setFetched("web", tt.fetchIndex, tt.entries)
				if l.pending["web"] {
					t.Errorf("refetched twice for the same fetch and set indexes")
				}
			}
		})
	}
}
