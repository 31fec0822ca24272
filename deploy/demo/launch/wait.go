package launch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// pollEvery is how often the wait helpers look again.
const pollEvery = 50 * time.Millisecond

var errExited = errors.New("process exited")

// poll calls check until it reports done, ctx ends (the error names what
// and the last failure) or exited is closed.
func poll(ctx context.Context, exited <-chan struct{}, what string, check func() (bool, error)) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var last error
	for {
		ok, err := check()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-exited:
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, errExited, last)
		case <-t.C:
		}
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// get returns the status and body of a GET.
func get(url string) (int, []byte, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// WaitHTTP200 waits until url answers 200 (an admin /ready or /readyz).
func WaitHTTP200(ctx context.Context, exited <-chan struct{}, url string) error {
	return poll(ctx, exited, url, func() (bool, error) {
		code, body, err := get(url)
		if err != nil {
			return false, err
		}
		return code == http.StatusOK, fmt.Errorf("status %d: %.200s", code, body)
	})
}

// WaitConnectPassing waits until service has want passing sidecars in
// Consul (/v1/health/connect/<service>?passing): that is when Consul
// reports them as endpoints to the control plane.
func WaitConnectPassing(ctx context.Context, c *api.Client, service string, want int) error {
	return poll(ctx, nil, fmt.Sprintf("%d passing sidecars of %s", want, service), func() (bool, error) {
		entries, _, err := c.Health().Connect(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return false, err
		}
		return len(entries) >= want, fmt.Errorf("%d passing", len(entries))
	})
}

// ClusterHost is one host of a sidecar's /clusters?format=json.
type ClusterHost struct {
	Address     string `json:"address"`
	HealthFlags string `json:"health_flags"`
	Ejected     *bool  `json:"ejected"`
	// EjectionReason says which outlier detector ejected it.
	EjectionReason  string  `json:"ejection_reason"`
	Requests        *uint64 `json:"requests"`
	ConnectFailures *uint64 `json:"connect_failures"`
}

// Cluster is one cluster of a sidecar's /clusters?format=json.
type Cluster struct {
	Name  string        `json:"name"`
	Hosts []ClusterHost `json:"hosts"`
}

// Clusters reads a sidecar's admin /clusters?format=json.
func Clusters(adminAddr string) ([]Cluster, error) {
	code, body, err := get("http://" + adminAddr + "/clusters?format=json")
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("/clusters: status %d", code)
	}
	var out struct {
		Clusters []Cluster `json:"clusters"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("/clusters: %w", err)
	}
	return out.Clusters, nil
}

// HealthyHosts returns the healthy host addresses of the cluster whose
// name starts with prefix (e.g. "payments." for payments.default.dc1.internal...).
func HealthyHosts(clusters []Cluster, prefix string) []string {
	var out []string
	for _, c := range clusters {
		if len(c.Name) < len(prefix) || c.Name[:len(prefix)] != prefix {
			continue
		}
		for _, h := range c.Hosts {
			if h.HealthFlags == "healthy" {
				out = append(out, h.Address)
			}
		}
	}
	return out
}

// HostsOf returns every host of the clusters whose name starts with
// prefix.
func HostsOf(clusters []Cluster, prefix string) []ClusterHost {
	var out []ClusterHost
	for _, c := range clusters {
		if strings.HasPrefix(c.Name, prefix) {
			out = append(out, c.Hosts...)
		}
	}
	return out
}

// WaitClusterHosts waits until the sidecar at adminAddr has at least want
// healthy hosts in the cluster named by prefix: its upstream is usable.
func WaitClusterHosts(ctx context.Context, exited <-chan struct{}, adminAddr, prefix string, want int) error {
	return poll(ctx, exited, fmt.Sprintf("%d healthy %s* hosts at %s", want, prefix, adminAddr), func() (bool, error) {
		cs, err := Clusters(adminAddr)
		if err != nil {
			return false, err
		}
		n := len(HealthyHosts(cs, prefix))
		return n >= want, fmt.Errorf("%d healthy", n)
	})
}

// ServiceHosts returns the distinct healthy host addresses of every
// cluster of service: <service>.<namespace>.<dc>.internal and its subset
// clusters <subset>.<service>.<namespace>.<dc>.internal.
func ServiceHosts(clusters []Cluster, service string) []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range clusters {
		if !ServiceCluster(c.Name, service) {
			continue
		}
		for _, h := range c.Hosts {
			if h.HealthFlags == "healthy" && !seen[h.Address] {
				seen[h.Address] = true
				out = append(out, h.Address)
			}
		}
	}
	return out
}

// WaitServiceHosts waits until the sidecar at adminAddr has at least want
// distinct healthy hosts of service across its clusters (subsets
// included): every instance is reachable.
func WaitServiceHosts(ctx context.Context, exited <-chan struct{}, adminAddr, service string, want int) error {
	return poll(ctx, exited, fmt.Sprintf("%d healthy hosts of %s at %s", want, service, adminAddr), func() (bool, error) {
		cs, err := Clusters(adminAddr)
		if err != nil {
			return false, err
		}
		n := len(ServiceHosts(cs, service))
		return n >= want, fmt.Errorf("%d healthy", n)
	})
}

// ServiceCluster reports whether a cluster name is one of service's:
// <service>.<namespace>.<dc>.internal, or a subset's
// <subset>.<service>.<namespace>.<dc>.internal.
func ServiceCluster(name, service string) bool {
	labels := strings.Split(name, ".")
	switch len(labels) {
	case 4:
		return labels[0] == service
	case 5:
		return labels[1] == service
	}
	return false
}
