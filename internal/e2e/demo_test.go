package e2e

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a778acb4/consulate/internal/consultest"
)

// TestDemo runs `make demo`'s runner non-interactively (-duration): it
// exits cleanly, its story shows traffic reaching every payments instance
// and both api versions, and every port it printed is closed afterwards
// (nothing left running).
func TestDemo(t *testing.T) {
	consul, err := consultest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, demoBin, "-bin", filepath.Dir(demoBin), "-consul", consul,
		"-duration", "1ms", "-requests", "150")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	story := out.String()
	defer func() {
		if t.Failed() {
			t.Logf("demo output:\n%s", story)
		}
	}()

	for _, tc := range []struct {
		name, instance string
	}{
		{"payments 1", "payments-1"},
		{"payments 2", "payments-2"},
		{"payments 3 (flaky)", "payments-3"},
		{"api v1", "api-v1"},
		{"api v2", "api-v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			re := regexp.MustCompile(`(?m)^  ` + tc.instance + `\s+v\d\s+(\d+) requests`)
			m := re.FindStringSubmatch(story)
			if m == nil {
				t.Fatalf("no story line for %s", tc.instance)
			}
			if n, _ := strconv.Atoi(m[1]); n == 0 {
				t.Errorf("%s got no requests", tc.instance)
			}
		})
	}
	if !regexp.MustCompile(`503   ← flaky`).MatchString(story) {
		t.Errorf("the story does not show the flaky instance's 503s")
	}

	// Every address the demo printed is closed now.
	addrs := regexp.MustCompile(`127\.0\.0\.1:\d+`).FindAllString(story, -1)
	if len(addrs) < 10 {
		t.Fatalf("found only %d addresses in the output", len(addrs))
	}
	for _, a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo exited", a)
		}
	}
}
