package check

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// manifest is the parsed Kubernetes manifest.
type manifest struct {
	services     []corev1.Service
	statefulSets []appsv1.StatefulSet
}

// parseManifest decodes every document of a multi-document YAML file into
// its Kubernetes API type, strictly: an unknown or misspelt field, or a
// value of the wrong type, is an error, as `kubectl apply
// --validate=strict` would have it.
func parseManifest(src []byte) (manifest, error) {
	var m manifest
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(src), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return m, fmt.Errorf("document %d: %w", i, err)
		}
		var err error
		switch meta.APIVersion + " " + meta.Kind {
		case "v1 Service":
			var s corev1.Service
			err = yaml.UnmarshalStrict([]byte(doc), &s)
			m.services = append(m.services, s)
		case "apps/v1 StatefulSet":
			var s appsv1.StatefulSet
			err = yaml.UnmarshalStrict([]byte(doc), &s)
			m.statefulSets = append(m.statefulSets, s)
		default:
			err = fmt.Errorf("unexpected %s %s", meta.APIVersion, meta.Kind)
		}
		if err != nil {
			return m, fmt.Errorf("document %d (%s): %w", i, meta.Kind, err)
		}
	}
	return m, nil
}

func stripComments(s string) string {
	return regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(s, "")
}

// manifestProblems checks what the deployment must be: a headless Service
// selecting the StatefulSet's pods; pods that run as non-root with a
// read-only root file system, no privilege escalation and no capability;
// probes of /healthz and /readyz on the metrics port that --metrics-addr
// serves; the image the Dockerfile's build command names; the cluster key
// copied to an owner-only file.
func manifestProblems(m manifest, image string) []string {
	var p []string
	bad := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }
	if len(m.services) != 1 || len(m.statefulSets) != 1 {
		bad("%d services and %d stateful sets: want one of each", len(m.services), len(m.statefulSets))
		return p
	}
	svc, ss := m.services[0], m.statefulSets[0]
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || ss.Spec.ServiceName != svc.Name {
		bad("the Service must be headless and the StatefulSet's serviceName")
	}
	for k, v := range svc.Spec.Selector {
		if ss.Spec.Template.Labels[k] != v {
			bad("the Service selects %s=%s, which the pods do not have", k, v)
		}
	}
	pod := ss.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		bad("the pod's securityContext must set runAsNonRoot and a non-zero runAsUser")
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		bad("the pod's seccompProfile must be RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		bad("automountServiceAccountToken must be false: actord does not use the API server")
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			bad("container %s: securityContext must forbid privilege escalation, make the root file system read-only and drop ALL capabilities", c.Name)
		}
		if sc != nil && sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			bad("container %s runs as root", c.Name)
		}
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
			bad("container %s: image %q is not pinned to a tag", c.Name, c.Image)
		}
		if c.Resources.Limits.Memory().IsZero() {
			bad("container %s has no memory limit", c.Name)
		}
	}
	var actord *corev1.Container
	for i := range pod.Containers {
		if pod.Containers[i].Name == "actord" {
			actord = &pod.Containers[i]
		}
	}
	if actord == nil {
		bad("no container named actord")
		return p
	}
	if actord.Image != image {
		bad("the actord container runs %q, the Dockerfile builds %q", actord.Image, image)
	}
	metricsPort := int32(0)
	for _, cp := range actord.Ports {
		if cp.Name == "metrics" {
			metricsPort = cp.ContainerPort
		}
	}
	if metricsPort == 0 || !slices.Contains(actord.Args, fmt.Sprintf("--metrics-addr=$(POD_IP):%d", metricsPort)) {
		bad("--metrics-addr must serve the container port named metrics (%d) on the pod's IP", metricsPort)
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", actord.ReadinessProbe, "/readyz"}, {"liveness", actord.LivenessProbe, "/healthz"}, {"startup", actord.StartupProbe, "/readyz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil || pr.probe.HTTPGet.Path != pr.path || pr.probe.HTTPGet.Port.String() != "metrics" {
			bad("the %s probe must GET %s on the metrics port", pr.name, pr.path)
		}
	}
	// The cluster key: a Secret copied by the init container to an
	// in-memory volume, which the daemon reads.
	keyArg := ""
	for _, a := range actord.Args {
		if v, ok := strings.CutPrefix(a, "--cluster-key-file="); ok {
			keyArg = v
		}
	}
	mounted := false
	for _, vm := range actord.VolumeMounts {
		if keyArg != "" && strings.HasPrefix(keyArg, vm.MountPath+"/") && vm.Name == "cluster-key" {
			mounted = true
		}
	}
	if !mounted {
		bad("--cluster-key-file (%q) must be in the cluster-key volume", keyArg)
	}
	if len(pod.InitContainers) != 1 || !slices.Contains(pod.InitContainers[0].Command, "0400") {
		bad("an init container must copy the key with mode 0400 (ReadClusterKey refuses group or other bits)")
	}
	for _, v := range pod.Volumes {
		if v.Secret != nil && v.Secret.DefaultMode != nil && *v.Secret.DefaultMode&0o007 != 0 {
			bad("secret volume %s is readable by others (defaultMode %o)", v.Name, *v.Secret.DefaultMode)
		}
		if v.Name == "cluster-key" && (v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory) {
			bad("the cluster-key volume must be an in-memory emptyDir")
		}
	}
	return p
}

// imageFromDockerfile reads the image name from the Dockerfile's build
// command ("docker build -t IMAGE .").
func imageFromDockerfile(t *testing.T) string {
	b, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`docker build -t (\S+) \.`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the Dockerfile names no image in its build command")
	}
	return string(m[1])
}

// TestKubernetesManifest: deploy/kubernetes/actord.yaml parses strictly
// into the Kubernetes API types and has no problem.
func TestKubernetesManifest(t *testing.T) {
	src, err := os.ReadFile("../kubernetes/actord.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseManifest(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range manifestProblems(m, imageFromDockerfile(t)) {
		t.Error(p)
	}
}

// TestManifestProblemsFound: the checks above catch what they must.
func TestManifestProblemsFound(t *testing.T) {
	src, err := os.ReadFile("../kubernetes/actord.yaml")
	if err != nil {
		t.Fatal(err)
	}
	image := imageFromDockerfile(t)
	for _, tc := range []struct{ from, to, want string }{
		{"runAsNonRoot: true\n        runAsUser: 65532", "runAsNonRoot: false\n        runAsUser: 65532", "runAsNonRoot"},
		{"runAsUser: 65532", "runAsUser: 0", "non-zero runAsUser"},
		{"readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "read-only"},
		{"path: /healthz", "path: /", "liveness probe"},
		{"httpGet: {path: /readyz, port: metrics}\n            periodSeconds: 5", "tcpSocket: {port: remote}\n            periodSeconds: 5", "readiness probe"},
		{"image: " + image, "image: actord:latest", "not pinned"},
		{"--metrics-addr=$(POD_IP):9100", "--metrics-addr=$(POD_IP):9200", "--metrics-addr"},
		{"automountServiceAccountToken: false", "automountServiceAccountToken: true", "automountServiceAccountToken"},
		{"defaultMode: 0440", "defaultMode: 0444", "readable by others"},
		{"terminationGracePeriodSeconds: 30", "terminationGracePeriodSecond: 30", "unknown field"},
		{"replicas: 3", "replicas: three", "cannot unmarshal"},
	} {
		if !bytes.Contains(src, []byte(tc.from)) {
			t.Fatalf("the manifest has no %q to change", tc.from)
		}
		m, err := parseManifest(bytes.Replace(src, []byte(tc.from), []byte(tc.to), 1))
		got := fmt.Sprint(err)
		if err == nil {
			got = strings.Join(manifestProblems(m, image), "\n")
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%q -> %q: problems %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}
