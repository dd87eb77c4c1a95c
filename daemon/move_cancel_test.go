package daemon

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// gatedKid is an imported instance whose Start waits for gate (nil: a
// fresh one, which does not wait), having told entered its ref.
type gatedKid struct {
	entered chan actor.Ref
	gate    chan struct{}
}

func (k *gatedKid) Start(c *actor.Context) error {
	if k.gate != nil {
		k.entered <- c.Self()
		<-k.gate
	}
	return nil
}

func (k *gatedKid) Receive(_ *actor.Context, msg any) (any, error) { return msg, nil }

type gatedState struct {
	N int `msgpack:"n"`
}

// TestImportCancelledWhileMadeIsKilled: a move's cancel reaches the
// target's gateway while the import for it is being made (the instance
// spawned, its Start running): once made, the instance is killed and the
// import refused, not left to run beside the old one, which resumes.
func TestImportCancelledWhileMadeIsKilled(t *testing.T) {
	entered, gate := make(chan actor.Ref, 1), make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(open)
	cfg := testConfig(t, "a")
	cfg.Kinds = Kinds{"gated": Kind(func(tallyArgs) (actor.Factory, error) {
		return func() actor.Actor { return &gatedKid{} }, nil
	})}
	cfg.Handoffs = []KindHandoff{Handoff("gated",
		func(*gatedKid) (gatedState, error) { return gatedState{}, nil },
		func(gatedState) (*gatedKid, error) { return &gatedKid{entered: entered, gate: gate}, nil })}
	a := start(t, cfg)
	state, err := msgpack.Marshal(gatedState{N: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type answer struct {
		v   any
		err error
	}
	res := make(chan answer, 1)
	go func() {
		v, err := a.sys.Ask(ctx, a.gw.ref, localImport{spawnImport{Kind: "gated", Args: map[string]any{"name": "g"}, State: state, Move: "m-gated"}})
		res <- answer{v, err}
	}()
	var made actor.Ref
	select {
	case made = <-entered:
	case <-ctx.Done():
		t.Fatal("the import's instance never started")
	}
	if _, err := a.sys.Ask(ctx, a.gw.ref, localCancel{cancelImport{Move: "m-gated"}}); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	open()
	r := <-res
	if rel, _ := r.v.(childReleased); r.err != nil || rel.Code != mvImport || !rel.Ref.IsZero() {
		t.Fatalf("the import of a move cancelled while it was made: %+v, %v; want refused", r.v, r.err)
	}
	eventually(t, 10*time.Second, "the instance made for the cancelled move killed", func() bool { return !isAlive(a, made) })
}

// TestImportsFromRegistryMembersOnly: a daemon of the cluster that is no
// registry member runs no root, so no move: its imports and cancels are
// refused, and it cannot fill the table of moves' imports (maxImports),
// which would refuse every move for a minute.
func TestImportsFromRegistryMembersOnly(t *testing.T) {
	f := &moveFixture{}
	ca := f.config(t, "a")
	ca.Apps.Members = []string{"a"}
	a := start(t, ca)
	cx := f.config(t, "x", a.Info().GossipAddr)
	cx.Apps.Members = []string{"a"}
	x := start(t, cx)
	eventually(t, 20*time.Second, "a knows x's gateway", func() bool {
		ml := appCall(t, a, ListMembers{}).(MemberList)
		return slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Name == "x" && !m.Gateway.IsZero() })
	})
	gwA, ok := x.gatewayOf("a")
	if !ok {
		eventually(t, 20*time.Second, "x knows a's gateway", func() bool { gwA, ok = x.gatewayOf("a"); return ok })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range []any{spawnImport{Kind: "tally", Args: map[string]any{"name": "x"}, State: []byte{0x80}, Move: "m-x"}, cancelImport{Move: "m-x"}} {
		if _, err := x.sys.Ask(ctx, gwA, m); !errors.Is(err, actor.ErrUnknownMessage) {
			t.Errorf("%T from a daemon that is no registry member: %v, want ErrUnknownMessage", m, err)
		}
	}
	// Neither was taken: a member's import for that move is made.
	v, err := a.sys.Ask(ctx, a.gw.ref, localImport{spawnImport{Kind: "tally", Args: map[string]any{"name": "m"}, State: []byte{0x80}, Move: "m-x"}})
	if r, _ := v.(childReleased); err != nil || r.Code != mvOK {
		t.Fatalf("a member's import after a non-member's cancel of the same move: %+v, %v", v, err)
	}
}
