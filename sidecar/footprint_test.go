package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBinaryFootprint builds the sidecar as the Makefile does and checks
// that what issue 8 took out of it to lower its resident set stays out
// (bench/README.md, idle RSS): grpc-go's x/net/trace and the templates it
// brings, and the protoc-gen-validate code generated for every Envoy
// message (package decode interprets the rules instead: calling one
// generated Validate through an interface links all of them, 5.7 MB).
func TestBinaryFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^SIDECAR_TAGS \?= (.*)$`).FindSubmatch(mk)
	if m == nil || !regexp.MustCompile(`(?m)^SIDECAR_BUILD = .*build -tags '\$\(SIDECAR_TAGS\)'$`).Match(mk) {
		t.Fatal("the Makefile has no SIDECAR_TAGS or SIDECAR_BUILD as this test expects")
	}
	cgo := "0"
	if !strings.Contains(string(mk), "SIDECAR_BUILD = CGO_ENABLED=0 ") {
		cgo = "1"
	}
	bin := filepath.Join(t.TempDir(), "sidecar")
	build := exec.Command("go", "build", "-tags", string(m[1]), "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command("go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	for _, bad := range []string{" golang.org/x/net/trace.", " html/template.", " text/template."} {
		if strings.Contains(string(out), bad) {
			t.Errorf("the sidecar links %s (grpcnotrace should leave it out)", strings.TrimSuffix(strings.TrimSpace(bad), "."))
		}
	}
	if n := len(regexp.MustCompile(`(?m) github\.com/(envoyproxy|cncf)/\S+\.Validate(All)?$`).FindAll(out, -1)); n > 0 {
		t.Errorf("the sidecar links %d generated Validate methods of Envoy messages; want none", n)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the sidecar is dynamically linked (an ELF interpreter); want a static binary (CGO_ENABLED=0)")
		}
	}
}
