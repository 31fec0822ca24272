package admin

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/seed-a778acb4/consulate/sidecar/config"
)

// clusterView is one cluster in /clusters?format=json.
type clusterView struct {
	Name               string     `json:"name"`
	EDSServiceName     string     `json:"eds_service_name,omitempty"`
	MaxConnections     uint32     `json:"max_connections"`
	MaxPendingRequests uint32     `json:"max_pending_requests"`
	MaxRequests        uint32     `json:"max_requests"`
	MaxRetries         uint32     `json:"max_retries"`
	Hosts              []hostView `json:"hosts"`
}

type hostView struct {
	Address         string     `json:"address"`
	HealthFlags     string     `json:"health_flags"`
	Weight          uint32     `json:"weight"`
	Priority        uint32     `json:"priority"`
	Locality        string     `json:"locality,omitempty"`
	Ejected         *bool      `json:"ejected,omitempty"`
	EjectedUntil    *time.Time `json:"ejected_until,omitempty"`
	Ejections       uint32     `json:"ejections,omitempty"`
	EjectionReason  string     `json:"ejection_reason,omitempty"`
	ActiveRequests  *int64     `json:"active_requests,omitempty"`
	Requests        *uint64    `json:"requests,omitempty"`
	ConnectFailures *uint64    `json:"connect_failures,omitempty"`
}

// healthFlags follows Envoy's /clusters health_flags wording.
func healthFlags(h config.HealthStatus, ejected bool) string {
	var flags []string
	switch h {
	case config.HealthUnhealthy, config.HealthTimeout:
		flags = append(flags, "/failed_eds_health")
	case config.HealthDraining:
		flags = append(flags, "/eds_status_draining")
	case config.HealthDegraded:
		flags = append(flags, "/degraded_eds_health")
	}
	if ejected {
		flags = append(flags, "/failed_outlier_check")
	}
	if len(flags) == 0 {
		return "healthy"
	}
	return strings.Join(flags, "")
}

func (s *Server) clusterViews() []clusterView {
	a := s.opts.Applied()
	if a == nil {
		return nil
	}
	type hostKey struct{ cluster, address string }
	var stats map[hostKey]HostStats
	if p := s.hosts.Load(); p != nil {
		all := (*p)()
		stats = make(map[hostKey]HostStats, len(all))
		for _, st := range all {
			stats[hostKey{st.Cluster, st.Address}] = st
		}
	}
	names := make([]string, 0, len(a.Config.Clusters))
	for n := range a.Config.Clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]clusterView, 0, len(names))
	for _, n := range names {
		c := a.Config.Clusters[n]
		cv := clusterView{
			Name: c.Name, EDSServiceName: c.EDSServiceName,
			MaxConnections: c.CircuitBreakers.MaxConnections, MaxPendingRequests: c.CircuitBreakers.MaxPendingRequests,
			MaxRequests: c.CircuitBreakers.MaxRequests, MaxRetries: c.CircuitBreakers.MaxRetries,
			Hosts: make([]hostView, 0, len(c.Endpoints)),
		}
		for _, ep := range c.Endpoints {
			hv := hostView{Address: ep.Address, Weight: ep.Weight, Priority: ep.Priority, Locality: ep.Locality}
			ejected := false
			if st, ok := stats[hostKey{c.Name, ep.Address}]; ok {
				ejected = st.Ejected
				hv.Ejected, hv.ActiveRequests, hv.Requests, hv.ConnectFailures = &st.Ejected, &st.ActiveRequests, &st.Requests, &st.ConnectFailures
				if st.Ejected {
					hv.EjectedUntil = &st.EjectedUntil
				}
				hv.Ejections, hv.EjectionReason = st.Ejections, st.EjectionReason
			}
			hv.HealthFlags = healthFlags(ep.Health, ejected)
			cv.Hosts = append(cv.Hosts, hv)
		}
		out = append(out, cv)
	}
	return out
}

// clusters writes Envoy-style "cluster::host::stat::value" lines, or JSON
// with ?format=json.
func (s *Server) clusters(w http.ResponseWriter, r *http.Request) {
	views := s.clusterViews()
	if r.URL.Query().Get("format") == "json" {
		writeJSON(w, http.StatusOK, map[string]any{"clusters": views})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	for _, c := range views {
		fmt.Fprintf(&b, "%s::default_priority::max_connections::%d\n", c.Name, c.MaxConnections)
		fmt.Fprintf(&b, "%s::default_priority::max_pending_requests::%d\n", c.Name, c.MaxPendingRequests)
		fmt.Fprintf(&b, "%s::default_priority::max_requests::%d\n", c.Name, c.MaxRequests)
		fmt.Fprintf(&b, "%s::default_priority::max_retries::%d\n", c.Name, c.MaxRetries)
		for _, h := range c.Hosts {
			p := c.Name + "::" + h.Address + "::"
			fmt.Fprintf(&b, "%shealth_flags::%s\n%sweight::%d\n%spriority::%d\n", p, h.HealthFlags, p, h.Weight, p, h.Priority)
			if h.Locality != "" {
				fmt.Fprintf(&b, "%slocality::%s\n", p, h.Locality)
			}
			if h.Ejected != nil {
				fmt.Fprintf(&b, "%sejected::%t\n%srq_active::%d\n%srq_total::%d\n%scx_connect_fail::%d\n",
					p, *h.Ejected, p, *h.ActiveRequests, p, *h.Requests, p, *h.ConnectFailures)
			}
			if h.Ejections > 0 {
				fmt.Fprintf(&b, "%sejections::%d\n%slast_ejection_reason::%s\n", p, h.Ejections, p, h.EjectionReason)
			}
		}
	}
	_, _ = w.Write([]byte(b.String()))
}
