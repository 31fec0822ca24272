package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNomadJob (no HCL2 parser or Nomad here: the checks are textual):
// every task running one of our images passes only flags its binary has,
// the sidecar task's proxy id is Nomad's <service ID>-sidecar-proxy for
// the group service, and the control plane's static ports are those its
// flags listen on.
func TestNomadJob(t *testing.T) {
	text := readFile(t, "nomad/consulate.nomad.hcl")
	if strings.Count(text, "{") != strings.Count(text, "}") {
		t.Fatalf("unbalanced braces")
	}
	tasks := regexp.MustCompile(`(?s)image = "(consulate/[a-z-]+):[^"]*"\s*(?:ports = \[[^\]]*\]\s*)?args = \[(.*?)\]`).FindAllStringSubmatch(text, -1)
	if len(tasks) != 3 {
		t.Fatalf("found %d tasks running our images, want 3 (control plane, sidecar, demo app)", len(tasks))
	}
	for _, m := range tasks {
		args := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(m[2], -1)
		var flat []string
		for _, a := range args {
			flat = append(flat, a[1])
		}
		checkArgs(t, binaryOf(m[1]), flat)
	}
	for _, want := range []string{
		`static = 18000`, `"-xds-addr=0.0.0.0:18000"`, `static = 19000`, `"-admin-addr=0.0.0.0:19000"`,
		`path     = "/readyz"`, `"-proxy-id=_nomad-task-${NOMAD_ALLOC_ID}-group-${NOMAD_GROUP_NAME}-web-8080-sidecar-proxy"`,
		`name = "web"`, `port = "8080"`, `"-control-plane=consulate-control-plane.service.consul:18000"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the job lacks %s", want)
		}
	}
	if !strings.Contains(binaries["consulate-control-plane"].help, "/readyz") {
		t.Errorf("the control plane serves no /readyz for the Nomad check")
	}
}

// TestDockerfile (no Docker daemon needed: textual): a build stage and
// one final stage per binary, each FROM distroless, USER nonroot, copying
// a file the build stage produces from a package that exists, with
// CONSULATE_* variables its binary reads and EXPOSEd ports it listens on.
func TestDockerfile(t *testing.T) {
	text := readFile(t, "docker/Dockerfile")
	built := map[string]string{} // output path → package
	for _, m := range regexp.MustCompile(`go build [^\n]*-o (\S+) (\./\S+)`).FindAllStringSubmatch(text, -1) {
		built[m[1]] = m[2]
		if _, err := os.Stat(filepath.Join("..", m[2], "main.go")); err != nil {
			t.Errorf("go build %s: %v", m[2], err)
		}
	}
	stages := regexp.MustCompile(`(?m)^FROM `).Split(text, -1)[1:]
	finals := map[string]bool{}
	for _, st := range stages {
		header, _, _ := strings.Cut(st, "\n")
		fields := strings.Fields(header)
		name := fields[len(fields)-1]
		if name == "build" {
			continue
		}
		finals[name] = true
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(fields[0], "gcr.io/distroless/static") {
				t.Errorf("base %s, want distroless static", fields[0])
			}
			if !regexp.MustCompile(`(?m)^USER nonroot:nonroot$`).MatchString(st) {
				t.Errorf("no USER nonroot:nonroot")
			}
			bin := "consulate-" + name
			if !strings.Contains(st, "COPY --from=build /out/"+bin+" /usr/local/bin/"+bin) || built["/out/"+bin] == "" {
				t.Errorf("does not copy the built /out/%s", bin)
			}
			if !strings.Contains(st, `ENTRYPOINT ["/usr/local/bin/`+bin+`"]`) {
				t.Errorf("ENTRYPOINT is not /usr/local/bin/%s", bin)
			}
			listens := map[string]bool{}
			for _, m := range regexp.MustCompile(`(CONSULATE_[A-Z_]+)=(\S+)`).FindAllStringSubmatch(st, -1) {
				checkEnv(t, bin, m[1])
				listens[portOf(m[2])] = true
			}
			for _, m := range regexp.MustCompile(`(?m)^EXPOSE (.*)$`).FindAllStringSubmatch(st, -1) {
				for _, p := range strings.Fields(m[1]) {
					if name == "control-plane" && !listens[p] {
						t.Errorf("EXPOSE %s: no CONSULATE_*_ADDR listens there", p)
					}
				}
			}
		})
	}
	for _, want := range []string{"control-plane", "sidecar", "demo-app"} {
		if !finals[want] {
			t.Errorf("no final stage %s", want)
		}
	}
}
