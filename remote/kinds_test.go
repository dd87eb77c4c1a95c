package remote

import (
	"strings"
	"testing"

	"github.com/actord/actord/actor"
)

type counterArgs struct {
	Start int64
	Name  string
}

// TestRegisterKindOf: typed spawn arguments arrive typed; the zero value
// when none are given; arguments of another type fail with a message
// naming both types.
func TestRegisterKindOf(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	for _, tn := range []*testNode{a, b} {
		if err := Register[counterArgs](tn.node, "test.counterArgs"); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan counterArgs, 2)
	RegisterKindOf(b.node, "counter", func(args counterArgs) (actor.Factory, error) {
		got <- args
		return func() actor.Actor { return fnActor(echo) }, nil
	})
	ctx := ctxT(t)
	if _, err := SpawnOf(ctx, a.node, b.node.Addr(), "counter", counterArgs{Start: 5, Name: "c"}); err != nil {
		t.Fatal(err)
	}
	if args := <-got; args != (counterArgs{Start: 5, Name: "c"}) {
		t.Fatalf("kind got %+v", args)
	}
	if _, err := a.node.Spawn(ctx, b.node.Addr(), "counter", nil); err != nil {
		t.Fatal(err)
	}
	if args := <-got; args != (counterArgs{}) {
		t.Fatalf("kind got %+v without arguments, want the zero value", args)
	}
	_, err := a.node.Spawn(ctx, b.node.Addr(), "counter", "not counterArgs")
	if err == nil || !strings.Contains(err.Error(), "takes remote.counterArgs, got string") {
		t.Fatalf("spawn with arguments of the wrong type: %v", err)
	}
}
