package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

// clientStats is what the demo's own client saw.
type clientStats struct {
	byStatus map[int]int
	errors   int
	took     time.Duration
}

// drive sends n GETs through web's sidecar with c concurrent clients.
func (m *mesh) drive(ctx context.Context, n, c int) (clientStats, error) {
	st := clientStats{byStatus: map[int]int{}}
	url := m.entry() + "checkout"
	fmt.Fprintf(m.out, "\nsending %d requests to %s (%d at a time) ...\n", n, url, c)
	client := &http.Client{Timeout: 10 * time.Second}
	jobs := make(chan int)
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for range jobs {
				code := get(ctx, client, url)
				mu.Lock()
				if code == 0 {
					st.errors++
				} else {
					st.byStatus[code]++
				}
				mu.Unlock()
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	st.took = time.Since(start)
	return st, ctx.Err()
}

func get(ctx context.Context, client *http.Client, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// hop is one upstream instance as seen from the client sidecars' access
// logs: requests by status and response flags.
type hop struct {
	requests int
	outcomes map[string]int // "200", "503 UF", ...
	// retries is how many extra attempts the client sidecar made for
	// the requests that ended on this host (attempts - 1 each).
	retries int
}

// hops counts the access-log lines of the outbound listeners of the given
// client instances, by upstream host, naming each host by the instance
// whose sidecar listens there.
func (m *mesh) hops(clients []string) (map[string]*hop, error) {
	byAddr := map[string]string{}
	for _, mb := range m.members {
		byAddr[launch.Addr(mb.SidecarPort)] = mb.ID
	}
	out := map[string]*hop{}
	for _, id := range clients {
		entries, err := launch.ReadAccessLog(m.sidecars[id].LogPath)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Listener, "upstream:") {
				continue
			}
			name := byAddr[e.UpstreamHost]
			if name == "" {
				name = "no host"
				if e.UpstreamHost != "" {
					name = e.UpstreamHost
				}
			}
			h := out[name]
			if h == nil {
				h = &hop{outcomes: map[string]int{}}
				out[name] = h
			}
			h.requests++
			if e.Attempts > 1 {
				h.retries += e.Attempts - 1
			}
			o := fmt.Sprint(e.Status)
			if e.ResponseFlags != "" && e.ResponseFlags != "-" {
				o += " " + e.ResponseFlags
			}
			h.outcomes[o]++
		}
	}
	return out, nil
}

// tell prints the story of the traffic: what the client saw, then each
// hop from the sidecars' access logs.
func (m *mesh) tell(ctx context.Context, st clientStats) error {
	if err := m.waitLogged(ctx, st); err != nil {
		return err
	}
	fmt.Fprintf(m.out, "\nWhat the client saw (%s): %s", st.took.Round(time.Millisecond), outcomes(intKeys(st.byStatus)))
	if st.errors > 0 {
		fmt.Fprintf(m.out, ", %d transport errors", st.errors)
	}
	fmt.Fprintln(m.out)
	for _, step := range []struct {
		title   string
		service string
	}{
		{"web → api, by version (web-1's sidecar access log)", "web"},
		{"api → payments, by instance (the api sidecars' access logs)", "api"},
	} {
		var clients []string
		for _, mb := range m.members {
			if mb.Service == step.service {
				clients = append(clients, mb.ID)
			}
		}
		hops, err := m.hops(clients)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.out, "\n%s:\n", step.title)
		for _, name := range slices.Sorted(maps.Keys(hops)) {
			h := hops[name]
			retried := ""
			if h.retries > 0 {
				retried = fmt.Sprintf(" (after %d retries elsewhere)", h.retries)
			}
			fmt.Fprintf(m.out, "  %-12s %-4s %5d requests   %s%s%s\n", name, m.version(name), h.requests, outcomes(h.outcomes), retried, m.note(name))
		}
		if step.service == "web" {
			m.tellSplit(hops)
		}
	}
	fmt.Fprintln(m.out, "\n(Response flags follow Envoy's: UF upstream connection failure, UH no healthy upstream, URX retries exhausted ...)")
	return m.tellHealth()
}

// tellSplit compares web's requests per api version with the
// service-splitter's weights.
func (m *mesh) tellSplit(hops map[string]*hop) {
	byVersion := map[string]int{}
	total := 0
	for name, h := range hops {
		if v := m.version(name); v != "" {
			byVersion[v] += h.requests
			total += h.requests
		}
	}
	if total == 0 {
		return
	}
	want := make([]string, 0, len(apiSplit))
	got := make([]string, 0, len(apiSplit))
	for _, s := range apiSplit {
		want = append(want, fmt.Sprintf("%s %.0f %%", s.Subset, s.Weight))
		got = append(got, fmt.Sprintf("%s %.0f %%", s.Subset, 100*float64(byVersion[s.Subset])/float64(total)))
	}
	fmt.Fprintf(m.out, "  split (service-splitter api): wanted %s, got %s\n", strings.Join(want, " / "), strings.Join(got, " / "))
}

// tellHealth prints how each client sidecar sees its upstream's hosts now
// (admin /clusters): healthy, or why not (e.g. ejected by outlier
// detection), with its request and failure counters.
func (m *mesh) tellHealth() error {
	byAddr := map[string]string{}
	for _, mb := range m.members {
		byAddr[launch.Addr(mb.SidecarPort)] = mb.ID
	}
	fmt.Fprintln(m.out, "\nHosts as the client sidecars see them now (admin /clusters):")
	for _, mb := range m.members {
		if len(mb.Upstreams) == 0 {
			continue
		}
		cs, err := launch.Clusters(m.sidecars[mb.ID].AdminAddr)
		if err != nil {
			return fmt.Errorf("%s /clusters: %w", mb.ID, err)
		}
		for _, c := range cs {
			for _, u := range mb.Upstreams {
				if !launch.ServiceCluster(c.Name, u.Service) {
					continue
				}
				hosts := slices.SortedFunc(slices.Values(c.Hosts), func(a, b launch.ClusterHost) int {
					return strings.Compare(byAddr[a.Address]+a.Address, byAddr[b.Address]+b.Address)
				})
				for _, h := range hosts {
					name := byAddr[h.Address]
					if name == "" {
						name = h.Address
					}
					state := h.HealthFlags
					if h.Ejected != nil && *h.Ejected {
						state = "EJECTED (" + h.EjectionReason + ") " + state
					}
					counters := ""
					if h.Requests != nil {
						counters = fmt.Sprintf("  %d requests", *h.Requests)
					}
					if h.ConnectFailures != nil && *h.ConnectFailures > 0 {
						counters += fmt.Sprintf(", %d connect failures", *h.ConnectFailures)
					}
					fmt.Fprintf(m.out, "  %-8s → %-12s %s%s\n", mb.ID, name, state, counters)
				}
			}
		}
	}
	return nil
}

// waitLogged waits until the access logs hold every request the client
// got an answer for: a sidecar writes its line once its response is done,
// which can be a moment after the client read its answer. Settled means
// web's public listener logged every answer and every outbound line has
// its inbound line at the server side. If that does not happen within a
// few seconds, the story goes on and says which requests lack a line.
func (m *mesh) waitLogged(ctx context.Context, st clientStats) error {
	answered := 0
	for _, n := range st.byStatus {
		answered += n
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		lc, err := m.countLines()
		if err != nil {
			return err
		}
		if lc.webIn >= answered && len(lc.unmatched) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err := ctx.Err(); errors.Is(err, context.Canceled) {
				return err
			}
			fmt.Fprintf(m.out, "\nnote: after 5 s, web's sidecar logged %d of %d answered requests, and %d outbound requests have no line at the server side's sidecar:\n", lc.webIn, answered, len(lc.unmatched))
			for i, e := range lc.unmatched {
				if i == 5 {
					fmt.Fprintf(m.out, "  ... and %d more\n", len(lc.unmatched)-5)
					break
				}
				fmt.Fprintf(m.out, "  request %s: %s → %s, status %d, flags %s, attempts %d\n", e.RequestID, e.Listener, e.UpstreamHost, e.Status, e.ResponseFlags, e.Attempts)
			}
			return nil
		case <-t.C:
		}
	}
}

// lineCount is what countLines found.
type lineCount struct {
	webIn int
	// unmatched are outbound lines with no inbound line of the same
	// request id at the upstream's sidecar.
	unmatched []launch.AccessEntry
}

// countLines counts web's inbound lines and matches every outbound line
// with the inbound line of the same request at the host it went to.
func (m *mesh) countLines() (lineCount, error) {
	var lc lineCount
	type key struct{ host, id string }
	inbound := map[key]bool{}
	var outbound []launch.AccessEntry
	for _, mb := range m.members {
		entries, err := launch.ReadAccessLog(m.sidecars[mb.ID].LogPath)
		if err != nil {
			return lc, err
		}
		for _, e := range entries {
			switch {
			case strings.HasPrefix(e.Listener, "upstream:"):
				outbound = append(outbound, e)
			case mb.Service == "web":
				lc.webIn++
			default:
				inbound[key{launch.Addr(mb.SidecarPort), e.RequestID}] = true
			}
		}
	}
	for _, e := range outbound {
		if !inbound[key{e.UpstreamHost, e.RequestID}] {
			lc.unmatched = append(lc.unmatched, e)
		}
	}
	return lc, nil
}

func (m *mesh) version(id string) string {
	for _, mb := range m.members {
		if mb.ID == id {
			return mb.Version
		}
	}
	return ""
}

func (m *mesh) note(id string) string {
	for _, mb := range m.members {
		if mb.ID == id && mb.flaky {
			return fmt.Sprintf("   ← flaky (%.0f%% 503)", mb.failureRate*100)
		}
	}
	return ""
}

func intKeys(in map[int]int) map[string]int {
	out := make(map[string]int, len(in))
	for k, v := range in {
		out[fmt.Sprint(k)] = v
	}
	return out
}

// outcomes renders {"200": 5, "503": 2} as "5 × 200, 2 × 503".
func outcomes(in map[string]int) string {
	parts := make([]string, 0, len(in))
	for _, k := range slices.Sorted(maps.Keys(in)) {
		parts = append(parts, fmt.Sprintf("%d × %s", in[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
