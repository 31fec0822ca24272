package launch

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStopEndsTheProcessGroup: Stop ends a process and the children it
// started in its group, and says when SIGTERM was not enough.
func TestStopEndsTheProcessGroup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  string
		wantErr error
	}{
		// The shell waits on its child; SIGTERM ends both.
		{"exits on SIGTERM", "sleep 300 & echo $! > child; wait", nil},
		// The shell and its child ignore SIGTERM: SIGKILL after the grace.
		{"killed after grace", "trap '' TERM; sleep 300 & echo $! > child; while :; do wait; done", ErrKilled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := Start(Spec{Name: "sh", Path: "/bin/sh", Args: []string{"-c", "cd " + dir + "; " + tc.script}, LogDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			child := waitChildPid(t, filepath.Join(dir, "child"))
			if err := p.Stop(300 * time.Millisecond); !errors.Is(err, tc.wantErr) {
				t.Errorf("Stop = %v, want %v", err, tc.wantErr)
			}
			select {
			case <-p.Done():
			default:
				t.Fatal("Stop returned before the process exited")
			}
			// The child was in the group: it is gone too (or a zombie of
			// init, which kill(0) still finds, so look at its state).
			deadline := time.Now().Add(5 * time.Second)
			for alive(child) {
				if time.Now().After(deadline) {
					t.Fatalf("child %d of the group still runs", child)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if err := p.Stop(time.Second); err != nil {
				t.Errorf("a second Stop = %v, want nil", err)
			}
		})
	}
}

func waitChildPid(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no child pid in %s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestReadAccessLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sidecar.log")
	lines := `{"level":"info","logger":"access","msg":"access","listener":"upstream:api","status":200,"response_flags":"-","upstream_cluster":"api.default.dc1.internal","upstream_host":"127.0.0.1:21000","attempts":1,"path":"/a"}
{"level":"info","msg":"config applied","listener":"not an access line"}
not json "access"
{"level":"info","logger":"access","msg":"access","listener":"public_listener","status":503,"response_flags":"UF","upstream_host":"","attempts":2,"path":"/b"}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAccessLog(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []AccessEntry{
		{Logger: "access", Listener: "upstream:api", Status: 200, ResponseFlags: "-", UpstreamCluster: "api.default.dc1.internal", UpstreamHost: "127.0.0.1:21000", Attempts: 1, Path: "/a"},
		{Logger: "access", Listener: "public_listener", Status: 503, ResponseFlags: "UF", Attempts: 2, Path: "/b"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("entries (-want +got):\n%s", d)
	}
}

func TestRegistration(t *testing.T) {
	i := Instance{Service: "api", ID: "api-v2", Version: "v2", AppPort: 8080, SidecarPort: 21000,
		Upstreams: []Upstream{{Service: "payments", LocalBindPort: 9191}}}
	r := i.Registration()
	if i.ProxyID() != "api-v2-sidecar-proxy" {
		t.Errorf("ProxyID = %q", i.ProxyID())
	}
	sc := r.Connect.SidecarService
	if sc.Port != 21000 || len(sc.Proxy.Upstreams) != 1 || sc.Proxy.Upstreams[0].DestinationName != "payments" || sc.Proxy.Upstreams[0].LocalBindPort != 9191 {
		t.Errorf("sidecar_service = %+v", sc)
	}
	if len(sc.Checks) != 2 || sc.Checks[0].TCP != "127.0.0.1:21000" || sc.Checks[1].AliasService != "api-v2" {
		t.Errorf("sidecar checks = %+v, want a TCP check on the sidecar port and an alias of api-v2", sc.Checks)
	}
}

func TestServiceHosts(t *testing.T) {
	healthy := func(addr string) ClusterHost { return ClusterHost{Address: addr, HealthFlags: "healthy"} }
	cs := []Cluster{
		{Name: "api.default.dc1.internal", Hosts: []ClusterHost{healthy("a:1"), healthy("b:1")}},
		{Name: "v1.api.default.dc1.internal", Hosts: []ClusterHost{healthy("a:1"), {Address: "c:1", HealthFlags: "/failed_outlier_check"}}},
		{Name: "v2.api.default.dc1.internal", Hosts: []ClusterHost{healthy("d:1")}},
		{Name: "api2.default.dc1.internal", Hosts: []ClusterHost{healthy("x:1")}},
		{Name: "v1.payments.default.dc1.internal", Hosts: []ClusterHost{healthy("y:1")}},
		{Name: "local_app", Hosts: []ClusterHost{healthy("z:1")}},
	}
	if d := cmp.Diff([]string{"a:1", "b:1", "d:1"}, ServiceHosts(cs, "api")); d != "" {
		t.Errorf("ServiceHosts (-want +got):\n%s", d)
	}
}
