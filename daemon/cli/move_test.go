package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/cluster"
	dmn "github.com/actord/actord/daemon"
)

type ctrState struct {
	Name string `msgpack:"name"`
	N    int    `msgpack:"n"`
}

// moveDaemons starts a and b, both registry members, with the kind
// counter (with a handoff) and plain (without), running "web" (children
// c1, c2, c3 of counter, p1 and p2 of plain) spread over both; it returns
// their capability files.
func moveDaemons(t *testing.T) (capA, capB string) {
	t.Helper()
	cfg := func(name string, seeds ...string) dmn.Config {
		return dmn.Config{Name: name, Listen: "127.0.0.1:0", Gossip: "127.0.0.1:0", DebugAddr: dmn.Off, Loops: 2, Seeds: seeds,
			DataDir: t.TempDir(), Cluster: cluster.Config{Profile: cluster.ProfileFast}, Logger: quietLog(),
			Kinds: dmn.Kinds{
				"counter": dmn.Kind(func(a ctrArgs) (actor.Factory, error) {
					return func() actor.Actor { return &ctrV1{name: a.Name} }, nil
				}),
				"plain": dmn.Kind(func(a ctrArgs) (actor.Factory, error) {
					return func() actor.Actor { return &ctrV1{name: a.Name} }, nil
				}),
			},
			Handoffs: []dmn.KindHandoff{dmn.Handoff("counter",
				func(c *ctrV1) (ctrState, error) { return ctrState{Name: c.name, N: c.n}, nil },
				func(s ctrState) (*ctrV1, error) { return &ctrV1{name: s.Name, n: s.N}, nil })},
			Apps: dmn.AppsConfig{Members: []string{"a", "b"}, Tick: 20 * time.Millisecond, ElectionTicks: 25, Lease: 3 * time.Second,
				RenewEvery: 300 * time.Millisecond, Margin: 100 * time.Millisecond}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := dmn.Start(ctx, cfg("a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	b, err := dmn.Start(ctx, cfg("b", a.Info().GossipAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) })
	return a.Info().CapabilityFile, b.Info().CapabilityFile
}

// TestMoveAndDrainCommands: `actord app move` prints where the child
// went (or, with --json, one document); a refused move exits 1 naming
// the cause; `actord drain` prints each child's outcome and a summary, or
// one document with --json.
func TestMoveAndDrainCommands(t *testing.T) {
	capA, capB := moveDaemons(t)
	p := filepath.Join(t.TempDir(), "web.json")
	spec := `{"name": "web", "prefer": ["a"], "children": [` +
		`{"name": "c1", "kind": "counter", "args": {"name": "c1"}}, {"name": "c2", "kind": "counter", "args": {"name": "c2"}},` +
		`{"name": "c3", "kind": "counter", "args": {"name": "c3"}}, {"name": "p1", "kind": "plain", "args": {"name": "p1"}},` +
		`{"name": "p2", "kind": "plain", "args": {"name": "p2"}}]}`
	if err := os.WriteFile(p, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, cb := "--capability-file="+capA, "--capability-file="+capB
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _, _ := runApp("deploy", p, ca)
		lcode, out, _ := runApp("list", cb)
		if code == 0 && lcode == 0 && strings.Contains(out, "running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not running: %s", out)
		}
		time.Sleep(50 * time.Millisecond) // polling, not synchronisation
	}
	// The children must all run: a move of one that is starting is refused.
	var code int
	var out, errs string
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, out, errs = runApp("move", "web", "--child", "c1", cb)
		if code == 0 || !strings.Contains(errs, "retry") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling, not synchronisation
	}
	m := regexp.MustCompile(`^web: c1 moved from (a|b) to (a|b)\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil || m[1] == m[2] || errs != "" {
		t.Fatalf("move: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	from, to := m[1], m[2]
	// Back, in JSON.
	code, out, errs = runApp("move", "web", "--child", "c1", "--to", from, "--json", ca)
	var doc struct {
		Version    int
		Op         string
		App, Child string
		From, To   string
		OK         bool
		Error      string
	}
	if code != 0 || json.Unmarshal([]byte(out), &doc) != nil || doc.Version != 1 || doc.Op != "move" || doc.App != "web" ||
		doc.Child != "c1" || doc.From != to || doc.To != from || !doc.OK || doc.Error != "" {
		t.Fatalf("move --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Refused: an unknown target, a kind without handoff; bad usage.
	if code, out, errs := runApp("move", "web", "--child", "c1", "--to", "zz", ca); code != 1 || out != "" ||
		strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "target daemon is not up") {
		t.Fatalf("move to zz: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	code, out, errs = runApp("move", "web", "--child", "p1", "--json", ca)
	doc = struct {
		Version    int
		Op         string
		App, Child string
		From, To   string
		OK         bool
		Error      string
	}{}
	if code != 1 || json.Unmarshal([]byte(out), &doc) != nil || doc.OK || !strings.Contains(doc.Error, "no state handoff") ||
		!strings.Contains(errs, "no state handoff") {
		t.Fatalf("move of p1 --json: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if code, _, errs := runApp("move", "web", ca); code != 2 || !strings.Contains(errs, "--child") {
		t.Fatalf("move without --child: exit %d, stderr %q", code, errs)
	}

	// Drain b in text, then (nothing left to move but the plain ones) in
	// JSON.
	var o, e bytes.Buffer
	code = run([]string{"drain", cb}, &o, &e)
	lines := strings.Split(strings.TrimSuffix(o.String(), "\n"), "\n")
	summary := regexp.MustCompile(`^b drained: (\d+) of (\d+) children moved, 0 of 0 roots handed over$`).FindStringSubmatch(lines[len(lines)-1])
	if code != 0 || summary == nil || e.Len() != 0 {
		t.Fatalf("drain: exit %d, stdout %q, stderr %q", code, o.String(), e.String())
	}
	moved, plain := 0, 0
	for _, l := range lines[:len(lines)-1] {
		switch {
		case regexp.MustCompile(`^web: c\d moved from b to a$`).MatchString(l):
			moved++
		case regexp.MustCompile(`^web: p\d not moved, runs on b: .*no state handoff`).MatchString(l):
			plain++
		default:
			t.Fatalf("drain: line %q", l)
		}
	}
	if fmt.Sprint(moved) != summary[1] || fmt.Sprint(moved+plain) != summary[2] {
		t.Fatalf("drain: %d moved and %d left, summary %q", moved, plain, lines[len(lines)-1])
	}
	o.Reset()
	e.Reset()
	code = run([]string{"drain", "--json", cb}, &o, &e)
	var dd struct {
		Version  int    `json:"version"`
		Node     string `json:"node"`
		OK       bool   `json:"ok"`
		Moved    int    `json:"moved"`
		Children []struct {
			App, Child, From, To string
			OK                   bool
			Error                string
		} `json:"children"`
		Roots []struct{} `json:"roots"`
	}
	if code != 0 || json.Unmarshal(o.Bytes(), &dd) != nil || dd.Version != 1 || dd.Node != "b" || !dd.OK || dd.Moved != 0 ||
		len(dd.Children) != plain || dd.Roots == nil || len(dd.Roots) != 0 {
		t.Fatalf("drain --json: exit %d, stdout %q, stderr %q", code, o.String(), e.String())
	}
	for _, c := range dd.Children {
		if c.OK || c.From != "b" || !strings.Contains(c.Error, "no state handoff") {
			t.Fatalf("drain --json: child %+v", c)
		}
	}
	if code := run([]string{"drain", "extra", cb}, &o, &e); code != 2 {
		t.Fatalf("drain with an argument: exit %d", code)
	}

	// Drain a, which runs web's root: its children go to b or c, and the
	// root is handed over.
	o.Reset()
	e.Reset()
	code = run([]string{"drain", ca}, &o, &e)
	lines = strings.Split(strings.TrimSuffix(o.String(), "\n"), "\n")
	summary = regexp.MustCompile(`^a drained: (\d+) of (\d+) children moved, 1 of 1 roots handed over$`).FindStringSubmatch(lines[len(lines)-1])
	if code != 0 || summary == nil || e.Len() != 0 {
		t.Fatalf("drain of a: exit %d, stdout %q, stderr %q", code, o.String(), e.String())
	}
	roots := 0
	for _, l := range lines[:len(lines)-1] {
		switch {
		case regexp.MustCompile(`^web: root handed over to [bc], its children adopted where they run$`).MatchString(l):
			roots++
		case regexp.MustCompile(`^web: [cp]\d (moved from a to [bc]|not moved, runs on a: .*no state handoff)`).MatchString(l):
		case regexp.MustCompile(`^web: p\d not moved, runs where it was: .*not held for the handover of its root`).MatchString(l):
			// a child left on a (no handoff) ends with the old root and
			// the new root starts it afresh: the drain says so
		default:
			t.Fatalf("drain of a: line %q", l)
		}
	}
	if roots != 1 {
		t.Fatalf("drain of a: %d root lines in %q", roots, o.String())
	}
}
