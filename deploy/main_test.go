package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// binary is one program the deployment files start, as its -h shows it.
type binary struct {
	path  string
	help  string
	flags map[string]bool
	envs  map[string]bool
	// probeFlags are the flags of `<binary> probe` (nil: no probe
	// subcommand).
	probeFlags map[string]bool
}

// binaries by the name the deployment files install them under.
var binaries = map[string]*binary{}

var (
	flagRE = regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`)
	envRE  = regexp.MustCompile(`CONSULATE_[A-Z_]+`)
)

// TestMain builds the binaries the files refer to and reads their -h.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "consulate-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./control-plane", "./sidecar", "./deploy/demo/app")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "deploy: go build: %v\n%s", err, out)
			return 1
		}
		for name, built := range map[string]string{
			"consulate-control-plane": "control-plane",
			"consulate-sidecar":       "sidecar",
			"consulate-demo-app":      "app",
		} {
			b := &binary{path: filepath.Join(dir, built), flags: map[string]bool{}, envs: map[string]bool{}}
			// -h prints the usage and exits 0 (control-plane, sidecar) or 2
			// (the demo app's plain flag package); either way it is the usage.
			out, _ := exec.Command(b.path, "-h").CombinedOutput()
			b.help = string(out)
			for _, m := range flagRE.FindAllStringSubmatch(b.help, -1) {
				b.flags[m[1]] = true
			}
			for _, e := range envRE.FindAllString(b.help, -1) {
				b.envs[e] = true
			}
			if len(b.flags) == 0 {
				fmt.Fprintf(os.Stderr, "deploy: no flags in %s -h:\n%s", built, out)
				return 1
			}
			if name != "consulate-demo-app" {
				out, err := exec.Command(b.path, "probe", "-h").CombinedOutput()
				if err != nil {
					fmt.Fprintf(os.Stderr, "deploy: %s probe -h: %v\n%s", built, err, out)
					return 1
				}
				b.probeFlags = map[string]bool{}
				for _, m := range flagRE.FindAllStringSubmatch(string(out), -1) {
					b.probeFlags[m[1]] = true
				}
			}
			binaries[name] = b
		}
		return m.Run()
	}()
	os.Exit(code)
}

// checkArgs fails for every -flag or -flag=value in args that bin does
// not have.
func checkArgs(t *testing.T, bin string, args []string) {
	t.Helper()
	b := binaries[bin]
	if b == nil {
		t.Fatalf("unknown binary %q", bin)
	}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !b.flags[name] {
			t.Errorf("%s has no flag -%s (argument %q); it has %v", bin, name, a, keys(b.flags))
		}
	}
}

// checkProbeCommand fails unless command runs `<bin> probe` as installed
// (/usr/local/bin/<bin>) with flags the probe has, asking the admin
// address adminAddr (the probe's default when the command names none).
// It returns the probe's arguments.
func checkProbeCommand(t *testing.T, bin, adminAddr string, command []string) []string {
	t.Helper()
	b := binaries[bin]
	if b == nil || b.probeFlags == nil {
		t.Fatalf("%s has no probe subcommand", bin)
	}
	if len(command) < 2 || command[0] != "/usr/local/bin/"+bin || command[1] != "probe" {
		t.Errorf("probe command %q, want /usr/local/bin/%s probe ...", command, bin)
		return nil
	}
	args := command[2:]
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || !b.probeFlags[name] {
			t.Errorf("%s probe has no flag %q; it has %v", bin, a, keys(b.probeFlags))
		}
	}
	if got := argValue(args, "admin-addr"); adminAddr != "" && got != adminAddr {
		t.Errorf("%s probe asks -admin-addr=%q, but the process listens on %q", bin, got, adminAddr)
	}
	return args
}

// checkEnv fails when bin does not read the CONSULATE_* variable name.
func checkEnv(t *testing.T, bin, name string) {
	t.Helper()
	if !strings.HasPrefix(name, "CONSULATE_") {
		return
	}
	if !binaries[bin].envs[name] {
		t.Errorf("%s does not read %s; it reads %v", bin, name, keys(binaries[bin].envs))
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// portOf returns the port of host:port ("" if none).
func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return ""
	}
	return addr[i+1:]
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
