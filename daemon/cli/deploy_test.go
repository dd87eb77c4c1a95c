package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The deployment files under deploy/ and the Dockerfile start actord with
// flags and a config file: these tests check that actord takes them. The
// Dockerfile's lint and the manifest's schema are checked by the module in
// deploy/check.

func readRepoFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitValues returns the values of a key in a systemd unit file.
func unitValues(unit, key string) []string {
	var vs []string
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

// manifestArgs returns the args of the actord container of the
// Kubernetes manifest, with $(POD_IP) and friends replaced by values.
func manifestArgs(t *testing.T, yaml string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(yaml, "\n          args:\n")
	if !ok {
		t.Fatal("the manifest has no args")
	}
	var args []string
	item := regexp.MustCompile(`^ +- (\S+)`)
	for _, l := range strings.Split(rest, "\n") {
		m := item.FindStringSubmatch(l)
		if m == nil {
			break
		}
		args = append(args, strings.NewReplacer("$(POD_IP)", "10.1.2.3", "$(POD_NAME)", "actord-0", "$(POD_NAMESPACE)", "default").Replace(m[1]))
	}
	return args
}

// TestDeployFilesParse: the flags of the systemd unit, the Kubernetes
// manifest and the Dockerfile's CMD, and the sample config file, are all
// taken by `actord run`.
func TestDeployFilesParse(t *testing.T) {
	unit := readRepoFile(t, "deploy/systemd/actord.service")
	exe := unitValues(unit, "ExecStart")
	if len(exe) != 1 {
		t.Fatalf("ExecStart: %q", exe)
	}
	unitArgs := strings.Fields(exe[0])
	if unitArgs[0] != "/usr/local/bin/actord" || unitArgs[1] != "run" {
		t.Fatalf("ExecStart %q: want /usr/local/bin/actord run ...", exe[0])
	}
	// The config file it names is deploy/systemd/actord.json, installed.
	for i, a := range unitArgs {
		if a == "--config" {
			unitArgs[i+1] = filepath.Join("..", "..", "deploy", "systemd", "actord.json")
		}
	}

	k8s := manifestArgs(t, readRepoFile(t, "deploy/kubernetes/actord.yaml"))
	if len(k8s) < 5 || k8s[0] != "run" {
		t.Fatalf("manifest args %q", k8s)
	}

	var cmd []string
	m := regexp.MustCompile(`(?m)^CMD (\[.*\])$`).FindStringSubmatch(readRepoFile(t, "Dockerfile"))
	if m == nil || json.Unmarshal([]byte(m[1]), &cmd) != nil || len(cmd) == 0 {
		t.Fatalf("the Dockerfile's CMD: %q", m)
	}
	for _, args := range [][]string{unitArgs[1:], k8s, cmd} {
		if args[0] != "run" {
			t.Fatalf("%q does not run the daemon", args)
		}
		if _, _, _, err := parseRun(args[1:]); err != nil {
			t.Errorf("actord %q: %v", args, err)
		}
	}
}

// TestSystemdUnit: the unit waits for readiness (Type=notify), does not
// restart a bad configuration, runs unprivileged; and, where
// systemd-analyze is installed, verifies cleanly and is rated at most 2.0
// by `systemd-analyze security` (docs/deploy.md gives the score).
func TestSystemdUnit(t *testing.T) {
	unit := readRepoFile(t, "deploy/systemd/actord.service")
	for key, want := range map[string]string{
		"Type": "notify", "NotifyAccess": "main", "RestartPreventExitStatus": "2", "User": "actord",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "CapabilityBoundingSet": "",
	} {
		if got := unitValues(unit, key); len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", key, got, want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze here: the unit's keys were checked, not the unit")
	}
	// verify wants ExecStart's binary to exist: this test's stands in.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "actord.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/actord", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, _ = exec.Command(analyze, "security", "--offline=true", path).CombinedOutput() // exits non-zero above its threshold
	m := regexp.MustCompile(`Overall exposure level for actord.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security said:\n%s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: %.1f", score)
	if score > 2.0 {
		t.Errorf("exposure %.1f, want at most 2.0:\n%s", score, out)
	}
}
