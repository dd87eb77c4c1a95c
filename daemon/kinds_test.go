package daemon

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/remote"
)

type counterArgs struct {
	Start int
	Name  string
}

// argsKind is a Kind over A whose factory hands the decoded arguments to
// got.
func argsKind[A any](got *A) remote.Kind {
	return Kind(func(a A) (actor.Factory, error) {
		*got = a
		return func() actor.Actor { return fnActor(func(*actor.Context, any) (any, error) { return nil, nil }) }, nil
	})
}

func TestKindArgs(t *testing.T) {
	var c counterArgs
	k := argsKind(&c)
	// What a gateway hands over for a client's counterArgs{7, "x"}: the
	// plain msgpack form, integers made int64.
	if _, err := k(map[string]any{"Start": int64(7), "Name": "x"}); err != nil || c != (counterArgs{7, "x"}) {
		t.Fatalf("plain map: %+v, %v", c, err)
	}
	if _, err := k(counterArgs{Start: 3}); err != nil || c != (counterArgs{Start: 3}) {
		t.Fatalf("typed: %+v, %v", c, err)
	}
	c = counterArgs{Start: 9}
	if _, err := k(nil); err != nil || c != (counterArgs{}) {
		t.Fatalf("nil: %+v, %v", c, err)
	}
	var n int
	if _, err := argsKind(&n)(int64(42)); err != nil || n != 42 {
		t.Fatalf("int from int64: %d, %v", n, err)
	}
	var xs []string
	if _, err := argsKind(&xs)([]any{"a", "b"}); err != nil || strings.Join(xs, ",") != "a,b" {
		t.Fatalf("[]string from []any: %v, %v", xs, err)
	}

	for _, bad := range []struct {
		args any
		want string
	}{
		{"seven", "want daemon.counterArgs, got string"},
		{map[string]any{"Start": "seven"}, "got map[string]interface {}"},
		{map[string]any{"Start": int64(1), "Extra": true}, `unknown field "Extra"`},
		{[]any{int64(1), "x", "y"}, "msgpack"},
	} {
		_, err := k(bad.args)
		if !errors.Is(err, remote.ErrKindArgs) || !strings.Contains(err.Error(), bad.want) || !strings.Contains(err.Error(), "msgpack") {
			t.Errorf("args %#v: got %v, want remote.ErrKindArgs naming %q and msgpack's reason", bad.args, err, bad.want)
		}
	}
}

// Config.Kinds are on the gateway when Start returns; their errors come
// back to the client naming the kind; RegisterTypes runs before the node
// serves, and its failure is a configuration error.
func TestDaemonConfigKinds(t *testing.T) {
	var got counterArgs
	cfg := testConfig(t, "a")
	cfg.Kinds = Kinds{"counter": argsKind(&got)}
	type ping struct{ N int }
	cfg.RegisterTypes = func(n *remote.Node) error { return remote.Register[ping](n, "daemon.test.ping") }
	d := start(t, cfg)

	c := testNode(t, "client", nil)
	if err := errors.Join(RegisterGatewayTypes(c), remote.Register[ping](c, "daemon.test.ping")); err != nil {
		t.Fatal(err)
	}
	startNode(t, c)
	gw, err := d.Gateway().Capability().Ref(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	spawn := func(args any) SpawnResult {
		t.Helper()
		v, err := c.System().Ask(ctx, gw, SpawnKind{Kind: "counter", Args: args})
		if err != nil {
			t.Fatal(err)
		}
		return v.(SpawnResult)
	}
	if res := spawn(map[string]any{"Start": 5, "Name": "five"}); res.Err() != nil || got != (counterArgs{5, "five"}) {
		t.Fatalf("spawn: %v, args %+v", res.Err(), got)
	}
	res := spawn("five")
	if err := res.Err(); !errors.Is(err, ErrSpawn) || !strings.Contains(err.Error(), `kind "counter"`) ||
		!strings.Contains(err.Error(), "want daemon.counterArgs, got string") {
		t.Fatalf("bad args: %v", err)
	}
	// The type registered by RegisterTypes crosses the network.
	echo, err := d.System().Spawn(ctx, func() actor.Actor {
		return fnActor(func(_ *actor.Context, m any) (any, error) { return m, nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	cp, _ := CapabilityOf(d.Node(), echo)
	ref, err := cp.Ref(c)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := c.System().Ask(ctx, ref, ping{N: 3}); err != nil || v != (ping{N: 3}) {
		t.Fatalf("ask with a registered type: %v, %v", v, err)
	}

	cfg = testConfig(t, "b")
	cfg.RegisterTypes = func(n *remote.Node) error { return remote.Register[ping](n, "string") }
	if _, err := Start(ctx, cfg); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "register types") {
		t.Fatalf("a failing RegisterTypes: %v, want ErrConfig", err)
	}
	for name, k := range map[string]remote.Kind{"": argsKind(&got), "nil": nil} {
		cfg = testConfig(t, "c")
		cfg.Kinds = Kinds{name: k}
		if err := cfg.WithDefaults().Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("kind %q: %v, want ErrConfig", name, err)
		}
	}
}

// TestKindArgsHostile: arguments as deep and as wide as a remote node lets
// through (remote's payload depth limit is 100) are refused with an error,
// without a panic; what is decoded again is what was already decoded.
func TestKindArgsHostile(t *testing.T) {
	var deep any = "x"
	for range 100 {
		deep = []any{deep}
	}
	wide := make(map[string]any, 100_000)
	for i := range 100_000 {
		wide[strconv.Itoa(i)] = int64(i)
	}
	var c counterArgs
	k := argsKind(&c)
	for name, args := range map[string]any{"deep": deep, "wide": wide, "deep field": map[string]any{"Start": deep}} {
		if _, err := k(args); !errors.Is(err, remote.ErrKindArgs) {
			t.Errorf("%s: %v, want remote.ErrKindArgs", name, err)
		}
	}
	var xs []any
	if _, err := argsKind(&xs)(deep); err != nil {
		t.Errorf("deep into []any: %v", err)
	}
}
