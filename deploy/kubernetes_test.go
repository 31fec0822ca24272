package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The parts of Kubernetes objects the checks read.
type (
	k8sObject struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec struct {
			// Deployment
			Template struct {
				Spec podSpec `yaml:"spec"`
			} `yaml:"template"`
			// Service
			Ports []struct {
				Name       string `yaml:"name"`
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	podSpec struct {
		SecurityContext struct {
			RunAsNonRoot bool `yaml:"runAsNonRoot"`
		} `yaml:"securityContext"`
		InitContainers []container `yaml:"initContainers"`
		Containers     []container `yaml:"containers"`
	}
	container struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		StartupProbe    *probe `yaml:"startupProbe"`
		ReadinessProbe  *probe `yaml:"readinessProbe"`
		LivenessProbe   *probe `yaml:"livenessProbe"`
		SecurityContext struct {
			AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		} `yaml:"securityContext"`
	}
	probe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port string `yaml:"port"`
		} `yaml:"httpGet"`
		TCPSocket *struct {
			Port string `yaml:"port"`
		} `yaml:"tcpSocket"`
		Exec *struct {
			Command []string `yaml:"command"`
		} `yaml:"exec"`
	}
)

func parseManifests(t *testing.T, path string) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readFile(t, path))))
	dec.KnownFields(false)
	var out []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, o)
	}
}

// binaryOf maps an image to the binary it runs (consulate/sidecar →
// consulate-sidecar), "" for images that are not ours.
func binaryOf(image string) string {
	name, _, _ := strings.Cut(image, ":")
	if rest, ok := strings.CutPrefix(name, "consulate/"); ok {
		return "consulate-" + rest
	}
	return ""
}

// TestKubernetes: the manifests parse; each of our containers passes only
// flags its binary has; every probe uses a declared port, and HTTP probes
// an admin path the binary serves on the port its -admin-addr names; the
// sidecar's public port is the registered sidecar_service port; the
// sidecar reaches the control plane's Service on its xDS port.
func TestKubernetes(t *testing.T) {
	objs := map[string]k8sObject{}
	for _, file := range []string{"kubernetes/control-plane.yaml", "kubernetes/workload.yaml"} {
		for _, o := range parseManifests(t, file) {
			objs[o.Kind+"/"+o.Metadata.Name] = o
		}
	}
	for _, want := range []string{"Deployment/consulate-control-plane", "Service/consulate-control-plane", "Deployment/web"} {
		if _, ok := objs[want]; !ok {
			t.Fatalf("no %s in the manifests", want)
		}
	}
	for _, name := range []string{"consulate-control-plane", "web"} {
		d := objs["Deployment/"+name]
		t.Run(name, func(t *testing.T) {
			if !d.Spec.Template.Spec.SecurityContext.RunAsNonRoot {
				t.Errorf("pod does not set runAsNonRoot")
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				checkContainer(t, c)
			}
		})
	}

	// The control plane Service exposes the container's xds port, and the
	// sidecar dials that Service on that port.
	svc := objs["Service/consulate-control-plane"]
	xdsPort := 0
	for _, p := range svc.Spec.Ports {
		if p.TargetPort == "xds" {
			xdsPort = p.Port
		}
	}
	web := objs["Deployment/web"].Spec.Template.Spec
	sidecar := findContainer(t, web.Containers, "consulate-sidecar")
	wantCP := "-control-plane=" + svc.Metadata.Name + "." + svc.Metadata.Namespace + ".svc.cluster.local:" + strconv.Itoa(xdsPort)
	if !slices.Contains(sidecar.Args, wantCP) {
		t.Errorf("sidecar args %q, want %q", sidecar.Args, wantCP)
	}
	// The sidecar's readiness is its /ready, which only `consulate-sidecar
	// probe` reaches (the admin endpoint is loopback-only): not a TCP probe.
	if p := sidecar.ReadinessProbe; p == nil || p.Exec == nil {
		t.Errorf("the sidecar's readiness probe is not an exec probe of consulate-sidecar probe")
	}
	// The registration's sidecar_service port is the sidecar's mesh port.
	reg := findContainer(t, web.InitContainers, "consul-register")
	m := regexp.MustCompile(`"sidecar_service": \{"port": (\d+)`).FindStringSubmatch(strings.Join(reg.Args, "\n"))
	if m == nil {
		t.Fatalf("no sidecar_service port in the registration: %q", reg.Args)
	}
	if got := containerPort(sidecar, "mesh"); strconv.Itoa(got) != m[1] {
		t.Errorf("sidecar mesh port %d, registered sidecar_service port %s", got, m[1])
	}
	proxyID := "-proxy-id=$(POD_NAME)-sidecar-proxy"
	if !slices.Contains(sidecar.Args, proxyID) || !strings.Contains(strings.Join(reg.Args, "\n"), `"id": "${POD_NAME}"`) {
		t.Errorf("the sidecar's %s does not match the registered service ID ${POD_NAME}", proxyID)
	}
}

func checkContainer(t *testing.T, c container) {
	t.Helper()
	if c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
	}
	bin := binaryOf(c.Image)
	if bin == "" {
		return
	}
	checkArgs(t, bin, c.Args)
	probes := 0
	for kind, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
		if p == nil {
			continue
		}
		probes++
		switch {
		case p.HTTPGet != nil:
			port := containerPort(c, p.HTTPGet.Port)
			if port == 0 {
				t.Errorf("%s %s probe: no container port %q", c.Name, kind, p.HTTPGet.Port)
			}
			if !strings.Contains(binaries[bin].help, p.HTTPGet.Path) {
				t.Errorf("%s %s probe: %s serves no %s (see its -h)", c.Name, kind, bin, p.HTTPGet.Path)
			}
			// The admin endpoint, or the demo app's one listener.
			addrFlag := "admin-addr"
			if !binaries[bin].flags[addrFlag] {
				addrFlag = "listen"
			}
			if addr := argValue(c.Args, addrFlag); portOf(addr) != strconv.Itoa(port) {
				t.Errorf("%s %s probe on port %d, but -%s is %q", c.Name, kind, port, addrFlag, addr)
			}
		case p.TCPSocket != nil:
			if containerPort(c, p.TCPSocket.Port) == 0 {
				t.Errorf("%s %s probe: no container port %q", c.Name, kind, p.TCPSocket.Port)
			}
		case p.Exec != nil:
			// `<binary> probe` against the admin address the container
			// listens on; only liveness may settle for -live.
			args := checkProbeCommand(t, bin, argValue(c.Args, "admin-addr"), p.Exec.Command)
			if live := slices.Contains(args, "-live"); live != (kind == "liveness") {
				t.Errorf("%s %s probe %q: -live belongs to the liveness probe only", c.Name, kind, p.Exec.Command)
			}
		default:
			t.Errorf("%s %s probe: neither httpGet, tcpSocket nor exec", c.Name, kind)
		}
	}
	if probes == 0 {
		t.Errorf("%s: no probes", c.Name)
	}
}

func findContainer(t *testing.T, cs []container, name string) container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return container{}
}

func containerPort(c container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name || strconv.Itoa(p.ContainerPort) == name {
			return p.ContainerPort
		}
	}
	return 0
}

func argValue(args []string, flag string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "-"+flag+"="); ok {
			return v
		}
	}
	return ""
}
