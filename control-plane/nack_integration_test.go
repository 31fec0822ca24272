package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/control-plane/admin"
	"github.com/seed-a778acb4/consulate/control-plane/internal/adstest"
	"github.com/seed-a778acb4/consulate/internal/consultest"
	"go.uber.org/zap/zaptest/observer"
)

// quiet is the window in which "nothing more is sent" is observed.
const quiet = 500 * time.Millisecond

// TestNACKedClusterIsReportedAndNotResent: a client that rejects its
// clusters shows in the log and /status, is not re-sent the rejected
// version, and keeps receiving the other types' updates.
func TestNACKedClusterIsReportedAndNotResent(t *testing.T) {
	a := consultest.Start(t)
	cp := startControlPlane(t, a.HTTPAddr)
	setProtocolHTTP(t, a.Client)
	registerAPI(t, a.Client, "api-1", 7001)
	registerWeb(t, a.Client)
	conn := adstest.Dial(t, cp.XDS)
	const reason = "cluster api.default.dc1.internal: field outlier_detection.split_external_local_origin_errors is not supported"

	t.Run("sotw", func(t *testing.T) {
		c := adstest.NewSotW(t, conn, nodeFor(webProxyID))
		c.Subscribe(adstest.ClusterType)
		cds := c.Recv(10 * time.Second)
		if cds == nil || len(cds.GetResources()) == 0 {
			t.Fatalf("no clusters: %v", cds)
		}
		c.NACK(cds, "", reason)
		c.Subscribe(adstest.EndpointType)
		eds := c.Recv(5 * time.Second)
		if eds == nil || eds.GetTypeUrl() != adstest.EndpointType {
			t.Fatalf("want an EDS response after the CDS NACK, got %v", eds)
		}
		c.ACK(eds)
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d responses within %v after NACK and ACK; want none", n, quiet)
		}
		checkNACKReported(t, cp, "sotw", cds.GetVersionInfo(), reason)
		opened := cp.logs.FilterMessage("stream opened").All()
		if len(opened) != 1 {
			t.Fatalf("%d 'stream opened' entries, want 1", len(opened))
		}
		f := opened[0].ContextMap()
		if f["node_id"] != webProxyID || f["protocol"] != "sotw" || !strings.HasPrefix(fmt.Sprint(f["peer"]), "127.0.0.1:") {
			t.Errorf("'stream opened' fields = %v", f)
		}

		// Other types still follow Consul; the rejected clusters are not re-sent.
		registerAPI(t, a.Client, "api-2", 7002)
		up := c.Recv(5 * time.Second)
		if up == nil || up.GetTypeUrl() != adstest.EndpointType {
			t.Fatalf("want an EDS update after a new instance, got %v", up)
		}
		c.ACK(up)
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d more responses; want none (CDS unchanged, NACKed)", n)
		}
	})

	t.Run("delta", func(t *testing.T) {
		c := adstest.NewDelta(t, conn, nodeFor(webProxyID))
		c.Subscribe(adstest.ClusterType)
		cds := c.Recv(10 * time.Second)
		if cds == nil || len(cds.GetResources()) == 0 {
			t.Fatalf("no clusters: %v", cds)
		}
		c.NACK(cds, reason)
		c.Subscribe(adstest.EndpointType)
		eds := c.Recv(5 * time.Second)
		if eds == nil || eds.GetTypeUrl() != adstest.EndpointType {
			t.Fatalf("want an EDS response after the CDS NACK, got %v", eds)
		}
		c.ACK(eds)
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d responses within %v after NACK and ACK; want none", n, quiet)
		}
		checkNACKReported(t, cp, "delta", cds.GetSystemVersionInfo(), reason)
		if _, body := httpGet(t, "http://"+cp.Admin+"/metrics"); !strings.Contains(body, `consulate_cp_nacks_total{type="Cluster"} 2`) {
			t.Errorf("/metrics does not count the two CDS NACKs:\n%s", grepLines(body, "consulate_cp_nacks_total"))
		}
		registerAPI(t, a.Client, "api-3", 7003)
		up := c.Recv(5 * time.Second)
		if up == nil || up.GetTypeUrl() != adstest.EndpointType {
			t.Fatalf("want an EDS update after a new instance, got %v", up)
		}
		c.ACK(up)
		if n := c.Drain(quiet); n != 0 {
			t.Fatalf("%d more responses; want none", n)
		}
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkNACKReported checks the NACK log line and /status.
func checkNACKReported(t *testing.T, cp *controlPlane, protocol, version, reason string) {
	t.Helper()
	nacks := cp.logs.FilterMessage("NACK").Filter(func(e observer.LoggedEntry) bool {
		return e.ContextMap()["protocol"] == protocol
	}).All()
	if len(nacks) != 1 {
		t.Fatalf("%d %s NACK log entries, want 1", len(nacks), protocol)
	}
	f := nacks[0].ContextMap()
	for k, want := range map[string]any{"node_id": webProxyID, "type": adstest.ClusterType, "version": version, "error_detail": reason} {
		if f[k] != want {
			t.Errorf("NACK log %s = %v, want %v", k, f[k], want)
		}
	}
	if names, _ := f["resources"].([]any); !slices.Contains(names, any("api.default.dc1.internal")) {
		t.Errorf("NACK log resources = %v, want api.default.dc1.internal among them", f["resources"])
	}

	if entries, _ := f["config_entries"].([]any); !slices.Contains(entries, any("proxy-defaults/global")) {
		t.Errorf("NACK log config_entries = %v, want proxy-defaults/global among them", f["config_entries"])
	}

	code, body := httpGet(t, "http://"+cp.Admin+"/status")
	if code != 200 {
		t.Fatalf("/status: %d", code)
	}
	var rep admin.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Proxies {
		if p.NodeID != webProxyID || string(p.Protocol) != protocol {
			continue
		}
		n := p.Types[adstest.ClusterType].LastNACK
		if n == nil || n.Version != version || n.Error != reason || n.At.IsZero() {
			t.Errorf("/status NACK = %+v, want version %s and the error", n, version)
		}
		if got := p.Types[adstest.EndpointType].LastACKedVersion; got == "" {
			t.Errorf("/status: EDS not ACKed: %+v", p.Types)
		}
		return
	}
	t.Errorf("/status has no %s stream for %s:\n%s", protocol, webProxyID, body)
}
