package daemon

import (
	"context"
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
