package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/seed-a778acb4/consulate/deploy/demo/launch"
)

// bins are the binaries under test, built once for the package.
var bins launch.Binaries

// demoBin is the demo runner (deploy/demo/run).
var demoBin string

// TestMain builds the binaries without -race (the processes are the
// subject, not this test's goroutines, and the race runtime costs CPU the
// machine does not have).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "consulate-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		// One invocation builds the four in parallel; -o into a directory
		// names each binary after its package's folder.
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
			"./control-plane", "./sidecar", "./deploy/demo/app", "./deploy/demo/run")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build: %v\n%s", err, out)
			return 1
		}
		// The names the demo runner and `make demo` use.
		for from, to := range map[string]string{"app": "demo-app", "run": "demo"} {
			if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
				fmt.Fprintln(os.Stderr, "e2e:", err)
				return 1
			}
		}
		bins = launch.Binaries{
			ControlPlane: filepath.Join(dir, "control-plane"),
			Sidecar:      filepath.Join(dir, "sidecar"),
			App:          filepath.Join(dir, "demo-app"),
		}
		demoBin = filepath.Join(dir, "demo")
		return m.Run()
	}()
	os.Exit(code)
}
