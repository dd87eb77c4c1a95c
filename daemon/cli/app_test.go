package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/cluster"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/gateway"
	"github.com/actord/actord/upgrade"
)

type echoActor struct{}

func (echoActor) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

type echoArgs struct {
	Prefix string `msgpack:"prefix"`
}

// appDaemon starts a daemon that is the only member of its application
// registry, with the kind "echo"; it returns the capability file.
func appDaemon(t *testing.T) string {
	t.Helper()
	cfg := dmn.Config{Name: "a", Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: dmn.Off, Loops: 2,
		DataDir: t.TempDir(), Cluster: cluster.Config{Profile: cluster.ProfileFast}, Logger: quietLog(),
		Kinds: dmn.Kinds{"echo": dmn.Kind(func(echoArgs) (actor.Factory, error) {
			return func() actor.Actor { return echoActor{} }, nil
		})},
		Apps: dmn.AppsConfig{Members: []string{"a"}, Tick: 20 * time.Millisecond, Lease: time.Second,
			RenewEvery: 200 * time.Millisecond, Margin: 100 * time.Millisecond}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := dmn.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d.Info().CapabilityFile
}

func runApp(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(append([]string{"app"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// TestAppCommand: deploy from a file, list (text and JSON), stop, start,
// remove; bad input exits 2 with one line, a failure 1.
func TestAppCommand(t *testing.T) {
	capFile := appDaemon(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := write("web.json", `{"name": "web", "children": [{"name": "front", "kind": "echo", "args": {"prefix": "> "}},
		{"name": "back", "kind": "echo", "node": "a", "shutdown": "2s"}]}`)
	c := "--capability-file=" + capFile
	if code, out, errs := runApp("deploy", spec, c); code != 0 || out != "web: deployed\n" {
		t.Fatalf("deploy: exit %d, %q, %q", code, out, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, errs := runApp("list", c, "--json")
		var l struct {
			Version int               `json:"version"`
			Apps    []gateway.AppInfo `json:"apps"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &l) != nil {
			t.Fatalf("list --json: exit %d, %q, %q", code, out, errs)
		}
		if l.Version == 1 && len(l.Apps) == 1 && l.Apps[0].State == "running" && l.Apps[0].Node == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not running: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ := runApp("list", c)
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "web") || !strings.Contains(out, "running") ||
		!strings.Contains(out, "front:echo,back:echo@a") {
		t.Fatalf("list: exit %d\n%s", code, out)
	}
	for _, op := range []string{"stop", "start", "remove"} {
		if code, out, errs := runApp(op, "web", c, "--json"); code != 0 || !strings.Contains(out, `"ok": true`) {
			t.Fatalf("%s: exit %d, %q, %q", op, code, out, errs)
		}
	}
	if code, out, _ := runApp("list", c); code != 0 || strings.Contains(out, "web") {
		t.Fatalf("list after remove: exit %d\n%s", code, out)
	}

	big := write("big.json", `{"name": "big", "children": [{"name": "x", "kind": "echo", "args": {"prefix": "`+strings.Repeat("y", maxSpecFile)+`"}}]}`)
	forged := write("forged.cap", forgedCap(t, capFile))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"explode"}, 2, "unknown subcommand"},
		{[]string{"stop", c}, 2, "want NAME"},
		{[]string{"list", "extra", c}, 2, "want no arguments"},
		{[]string{"deploy", filepath.Join(dir, "missing.json"), c}, 2, "missing.json"},
		{[]string{"deploy", write("unknown.json", `{"name": "w", "colour": "red"}`), c}, 2, "colour"},
		{[]string{"deploy", write("kind.json", `{"name": "w", "children": [{"name": "x", "kind": "nope"}]}`), c}, 2, "children[0].kind"},
		{[]string{"deploy", write("args.json", `{"name": "w", "children": [{"name": "x", "kind": "echo", "args": {"prefix": 3}}]}`), c}, 2, "children[0].args"},
		{[]string{"deploy", big, c}, 2, "over 1048576 bytes"},
		{[]string{"stop", "nothing", c}, 1, "unknown application"},
		{[]string{"list", "--capability-file", forged, "--timeout", "2s"}, 1, "no such actor"},
		{[]string{"list", "--capability-file", filepath.Join(dir, "none.cap")}, 1, "none.cap"},
	} {
		code, out, errs := runApp(tc.args...)
		lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
		if code != tc.code || out != "" || len(lines) != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and one line naming %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// forgedCap is the capability of capFile with another secret.
func forgedCap(t *testing.T, capFile string) string {
	cp, err := gateway.ReadCapability(capFile)
	if err != nil {
		t.Fatal(err)
	}
	cp.ID.Secret[0] ^= 0xff
	return cp.String() + "\n"
}

// TestRunAppConfig: the registry's settings from the file and flags, and
// bad values refused with exit 2, naming the setting.
func TestRunAppConfig(t *testing.T) {
	p := filepath.Join(t.TempDir(), "actord.json")
	body := `{"app_members": ["a", "b", "c"], "app_tick": "50ms", "app_lease": "3s", "app_margin": "500ms",
		"apps": [{"name": "web", "prefer": ["b"], "takeover": true, "children": [{"name": "x", "kind": "echo", "args": {"n": 3, "f": 1.5}}]}]}`
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, _, err := parseRun([]string{"--config", p, "--app-renew-every", "400ms", "--app-election-ticks", "12"})
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Apps
	if strings.Join(a.Members, ",") != "a,b,c" || a.Tick != 50*time.Millisecond || a.Lease != 3*time.Second ||
		a.Margin != 500*time.Millisecond || a.RenewEvery != 400*time.Millisecond || a.ElectionTicks != 12 || len(a.Apps) != 1 {
		t.Fatalf("apps config %+v", a)
	}
	if args := a.Apps[0].Children[0].Args; args["n"] != int64(3) || args["f"] != 1.5 || !a.Apps[0].Takeover {
		t.Fatalf("app spec %+v", a.Apps[0])
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--app-members", "a,a"}, "app members"},
		{[]string{"--app-members", "a", "--app-lease", "100ms"}, "app lease"},
		{[]string{"--app-members", "a", "--app-tick", "1us"}, "app tick"},
		{[]string{"--app-members", "a", "--app-margin", "1ms"}, "app margin"},
		{[]string{"--app-members", "a", "--app-renew-every", "4s"}, "app renew every"},
		{[]string{"--app-members", "a", "--app-election-ticks", "1"}, "app election ticks"},
		{[]string{"--app-lease", "soon"}, "app-lease"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"run"}, tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	// An application of a kind the program lacks: found by Start, exit 2.
	var stdout, stderr bytes.Buffer
	code := run(append(localArgs(t), "--config", p, "--app-members", "t"), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "apps[0]") || !strings.Contains(stderr.String(), "kind") {
		t.Fatalf("unknown kind in the config: exit %d, stderr %q", code, stderr.String())
	}
}

// The kinds of TestAppUpgradeCommand: "counter" and "counter2" count;
// the upgrade between them refuses the child named "boom".

type ctrArgs struct {
	Name string `msgpack:"name"`
	N    int    `msgpack:"n"`
}

type ctrV1 struct {
	name string
	n    int
}

func (c *ctrV1) Receive(*actor.Context, any) (any, error) { c.n++; return c.n, nil }

type ctrV2 struct {
	name string
	n    int
}

func (c *ctrV2) Receive(*actor.Context, any) (any, error) { c.n++; return c.n, nil }

// upgradeDaemon starts a daemon, the only member of its registry, with
// the kinds counter and counter2 and the upgrade from one to the other,
// running the application "web" (children front, boom, side); it returns
// the capability file.
func upgradeDaemon(t *testing.T) string {
	t.Helper()
	cfg := dmn.Config{Name: "a", Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: dmn.Off, Loops: 2,
		DataDir: t.TempDir(), Cluster: cluster.Config{Profile: cluster.ProfileFast}, Logger: quietLog(),
		Kinds: dmn.Kinds{
			"counter": dmn.Kind(func(a ctrArgs) (actor.Factory, error) {
				return func() actor.Actor { return &ctrV1{name: a.Name} }, nil
			}),
			"counter2": dmn.Kind(func(a ctrArgs) (actor.Factory, error) {
				return func() actor.Actor { return &ctrV2{name: a.Name} }, nil
			}),
		},
		Upgrades: []dmn.KindUpgrade{dmn.Upgrade("counter", "counter2", upgrade.Migration[*ctrV1, *ctrV2]{
			Forward: func(o *ctrV1) (*ctrV2, error) {
				if o.name == "boom" {
					return nil, errors.New("boom cannot move")
				}
				return &ctrV2{name: o.name, n: o.n}, nil
			},
			Back: func(n *ctrV2) (*ctrV1, error) { return &ctrV1{name: n.name, n: n.n}, nil },
		})},
		Apps: dmn.AppsConfig{Members: []string{"a"}, Tick: 20 * time.Millisecond, Lease: time.Second,
			RenewEvery: 200 * time.Millisecond, Margin: 100 * time.Millisecond}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := dmn.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Shutdown(context.Background()) })
	return d.Info().CapabilityFile
}

// TestAppUpgradeCommand: `actord app upgrade` prints a line per child and
// the outcome, or with --json one document with the steps; a rolled back
// upgrade exits 1 naming the child and why, a refused one 2.
func TestAppUpgradeCommand(t *testing.T) {
	capFile := upgradeDaemon(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := func(front, boom string) string {
		return fmt.Sprintf(`{"name": "web", "children": [{"name": "front", "kind": %q, "args": {"name": "front", "n": 300}},
			{"name": "boom", "kind": %q, "args": {"name": "boom"}}, {"name": "side", "kind": "counter", "args": {"name": "side"}}]}`, front, boom)
	}
	c := "--capability-file=" + capFile
	if code, out, errs := runApp("deploy", write("web.json", spec("counter", "counter")), c); code != 0 {
		t.Fatalf("deploy: exit %d, %q, %q", code, out, errs)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out, _ := runApp("list", c)
		if code == 0 && strings.Contains(out, "running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not running: %s", out)
		}
		time.Sleep(20 * time.Millisecond) // polling, not synchronisation
	}

	// Both front and boom: boom refuses, front is moved back.
	both := write("both.json", spec("counter2", "counter2"))
	// The steps as they happen (front upgraded, boom refused, front moved
	// back), each child's last line its final state.
	code, out, errs := runApp("upgrade", "web", "-f", both, c)
	last := func(child string) string {
		l := ""
		for line := range strings.SplitSeq(out, "\n") {
			if strings.HasPrefix(line, "web: "+child+" ") {
				l = line
			}
		}
		return l
	}
	if code != 1 || strings.Count(out, "\n") != 3 || !strings.HasPrefix(out, "web: front on a: counter -> counter2: upgraded\nweb: boom on a: ") ||
		!strings.HasPrefix(last("front"), "web: front on a: counter -> counter2: rolled back: ") ||
		!strings.HasPrefix(last("boom"), "web: boom on a: counter -> counter2: refused: ") || !strings.Contains(last("boom"), "boom cannot move") {
		t.Fatalf("failing upgrade: exit %d, stdout %q", code, out)
	}
	if strings.Count(errs, "\n") != 1 || !strings.Contains(errs, `child "boom"`) || !strings.Contains(errs, "rolled back") ||
		!strings.Contains(errs, "boom cannot move") {
		t.Fatalf("failing upgrade: stderr %q: want one line naming the child and the cause", errs)
	}
	code, out, errs = runApp("upgrade", "web", "-f", both, c, "--json")
	var doc struct {
		Version int                   `json:"version"`
		App     string                `json:"app"`
		Op      string                `json:"op"`
		OK      bool                  `json:"ok"`
		Steps   []gateway.UpgradeStep `json:"steps"`
		Error   string                `json:"error"`
	}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version != 1 || doc.App != "web" || doc.Op != "upgrade" || doc.OK ||
		len(doc.Steps) != 2 || doc.Steps[0].Outcome != "rolled back" || doc.Steps[1].Outcome != "refused" ||
		!strings.Contains(doc.Error, `child "boom"`) || !strings.Contains(errs, `child "boom"`) {
		t.Fatalf("failing upgrade --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	// One child by name, in text, then another in JSON.
	if code, out, errs := runApp("upgrade", "web", "--child", "front", "--kind", "counter2", c); code != 0 ||
		out != "web: front on a: counter -> counter2: upgraded\nweb: upgraded\n" || errs != "" {
		t.Fatalf("upgrade of front: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runApp("upgrade", "web", "--child", "side", "--kind", "counter2", "--json", c)
	doc.Steps, doc.Error = nil, ""
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || !doc.OK || doc.Error != "" ||
		!slices.Equal(doc.Steps, []gateway.UpgradeStep{{Child: "side", Node: "a", From: "counter", To: "counter2", Outcome: "upgraded"}}) {
		t.Fatalf("upgrade of side --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, out, _ := runApp("list", c); code != 0 || !strings.Contains(out, "front:counter2,boom:counter,side:counter2") {
		t.Fatalf("list after the upgrades: exit %d\n%s", code, out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"upgrade", "web", c}, 2, "want -f SPEC.json"},
		{[]string{"upgrade", "web", "--child", "front", c}, 2, "want -f SPEC.json"},
		{[]string{"upgrade", "web", "-f", both, "--child", "front", "--kind", "x", c}, 2, "not both"},
		{[]string{"upgrade", "shop", "-f", both, c}, 2, `the spec is of "web"`},
		{[]string{"upgrade", "web", "--child", "front", "--kind", "counter", c}, 2, `no upgrade from kind "counter2" to "counter"`},
		{[]string{"upgrade", "web", "--child", "front", "--kind", "nope", c}, 2, "children[0].kind"},
		{[]string{"upgrade", "shop", "--child", "front", "--kind", "counter2", c}, 1, "unknown application"},
	} {
		code, out, errs := runApp(tc.args...)
		lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
		if code != tc.code || out != "" || len(lines) != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %d and one line naming %q", tc.args, code, out, errs, tc.code, tc.want)
		}
	}
}
