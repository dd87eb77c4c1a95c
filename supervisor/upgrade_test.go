package supervisor

import (
	"context"
	"errors"
	"testing"

	"github.com/actord/actord/actor"
)

// UpgradeChild (package upgrade's hook) swaps a local child's Start and
// returns the old one; it refuses a remote child, a nil Start and a ref that
// is not a child.
func TestUpgradeChildHook(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer func() { _ = sys.Shutdown(context.Background()) }()
	ref, err := sys.Spawn(context.Background(), func() actor.Actor { return &oldVersion{} })
	if err != nil {
		t.Fatal(err)
	}
	old := func() actor.Actor { return &oldVersion{} }
	local := &child{spec: ChildSpec{ID: "local", Start: old}, ref: ref}
	s := &sup{children: []*child{local}, byRef: map[actor.Ref]*child{ref: local}}
	next := func() actor.Actor { return &newVersion{} }
	prev, err := s.UpgradeChild(ref, next)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := prev().(*oldVersion); !ok {
		t.Fatal("the previous Start is not returned")
	}
	if _, ok := local.spec.Start().(*newVersion); !ok {
		t.Fatal("Start not swapped")
	}
	if _, err := s.UpgradeChild(ref, nil); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("nil Start: %v", err)
	}
	local.spec.Remote, local.spec.Start = Remote{Kind: "k"}, nil
	if _, err := s.UpgradeChild(ref, next); !errors.Is(err, ErrBadSpec) {
		t.Fatalf("remote child: %v", err)
	}
	if _, err := s.UpgradeChild(actor.Ref{}, next); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no such child: %v", err)
	}
}

type oldVersion struct{}

func (*oldVersion) Receive(*actor.Context, any) (any, error) { return nil, nil }

type newVersion struct{}

func (*newVersion) Receive(*actor.Context, any) (any, error) { return nil, nil }
