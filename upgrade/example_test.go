package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/upgrade"
)

// Version 1 of a greeter counts greetings.
type greeterV1 struct{ count int }

func (g *greeterV1) Receive(_ *actor.Context, msg any) (any, error) {
	g.count++
	return fmt.Sprintf("hello %v (#%d)", msg, g.count), nil
}

// Version 2 also remembers the last name it greeted.
type greeterV2 struct {
	count int
	last  string
}

func (g *greeterV2) Receive(_ *actor.Context, msg any) (any, error) {
	g.count++
	prev := g.last
	g.last = fmt.Sprint(msg)
	return fmt.Sprintf("hi %v (#%d, after %q)", msg, g.count, prev), nil
}

// An actor is upgraded in place: its ref stays valid and its state (the
// count) moves to the new version.
func ExampleApply() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer sys.Shutdown(ctx)

	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &greeterV1{} })
	v, _ := sys.Ask(ctx, ref, "ann")
	fmt.Println(v)

	err := upgrade.Apply(ctx, sys, ref, upgrade.Migration[*greeterV1, *greeterV2]{
		From: "v1", To: "v2",
		Forward: func(old *greeterV1) (*greeterV2, error) { return &greeterV2{count: old.count}, nil },
		Back:    func(n *greeterV2) (*greeterV1, error) { return &greeterV1{count: n.count}, nil },
		Factory: func() *greeterV2 { return &greeterV2{} }, // for restarts
	}, upgrade.Options{Logger: slog.New(slog.DiscardHandler)})
	fmt.Println("upgraded:", err == nil)

	v, _ = sys.Ask(ctx, ref, "bob")
	fmt.Println(v)
	// Output:
	// hello ann (#1)
	// upgraded: true
	// hi bob (#2, after "")
}

// A migration from the wrong version is refused, and the actor runs on.
func ExampleApply_refused() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer sys.Shutdown(ctx)

	ref, _ := sys.Spawn(ctx, func() actor.Actor { return &greeterV2{} })
	err := upgrade.Apply(ctx, sys, ref, upgrade.Migration[*greeterV1, *greeterV2]{
		From: "v1", To: "v2",
		Forward: func(old *greeterV1) (*greeterV2, error) { return &greeterV2{count: old.count}, nil },
		Factory: func() *greeterV2 { return &greeterV2{} },
	}, upgrade.Options{Logger: slog.New(slog.DiscardHandler)})
	fmt.Println(errors.Is(err, upgrade.ErrRefused), errors.Is(err, upgrade.ErrWrongVersion))
	// Output:
	// true true
}

// An actor's state moves to another actor (on another node, in a
// daemon's child move): the old one is held while its state is exported,
// the new one is made from it, and the old ref then forwards to the new.
func ExampleHold() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer sys.Shutdown(ctx)

	old, _ := sys.Spawn(ctx, func() actor.Actor { return &greeterV1{} }, actor.OnLoop(0))
	fmt.Println(mustAsk(sys, old, "ann"))

	type state struct{ Count int }
	h, st, err := upgrade.Hold(ctx, sys, old, func(g *greeterV1) (state, error) { return state{g.count}, nil }, upgrade.HoldOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	nw, _ := sys.Spawn(ctx, func() actor.Actor { return &greeterV2{count: st.Count} }, actor.OnLoop(1))
	if err := h.Forward(ctx, nw, time.Minute); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(mustAsk(sys, old, "bob")) // through the old ref
	fmt.Println(mustAsk(sys, nw, "cid"))
	// Output:
	// hello ann (#1)
	// hi bob (#2, after "")
	// hi cid (#3, after "bob")
}

func mustAsk(sys *actor.System, r actor.Ref, msg any) any {
	v, err := sys.Ask(context.Background(), r, msg)
	if err != nil {
		return err
	}
	return v
}
