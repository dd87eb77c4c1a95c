package quorum_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

func TestConfigurations(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	a, b, c, d := deadRef(t, sys), deadRef(t, sys), deadRef(t, sys), deadRef(t, sys)

	abc := config(t, m, nil, a, b, c, a) // the duplicate is dropped
	if abc.Size() != 3 || abc.System().String() != "majority" {
		t.Fatalf("%v: size %d, system %v", abc, abc.Size(), abc.System())
	}
	cba := config(t, m, quorum.Threshold(1, 3), c, b, a)
	if abc.ID() != cba.ID() || !abc.Equal(cba) {
		t.Fatalf("same set, different ids: %v %v", abc, cba)
	}
	if got := cba.Refs(); got[0] != c || got[2] != a {
		t.Fatalf("order not kept: %v", got)
	}

	abcd, err := abc.Add(d, a)
	if err != nil {
		t.Fatal(err)
	}
	if abcd.Size() != 4 || abc.Size() != 3 || abcd.ID() == abc.ID() || abcd.Equal(abc) {
		t.Fatalf("Add: %v from %v", abcd, abc)
	}
	ab, err := abcd.Remove(c, d)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Size() != 2 || abcd.Size() != 4 || ab.Index(c) >= 0 {
		t.Fatalf("Remove: %v from %v", ab, abcd)
	}
	dbc, err := abc.Replace(a, d)
	if err != nil {
		t.Fatal(err)
	}
	if dbc.Index(d) != 0 || dbc.Index(a) >= 0 || abc.Index(a) != 0 {
		t.Fatalf("Replace: %v from %v", dbc, abc)
	}
	if back, _ := dbc.Replace(d, a); back.ID() != abc.ID() || !back.Equal(abc) {
		t.Fatalf("replaced back: %v, want the id of %v", back, abc)
	}
	if _, err := abc.Replace(d, a); !errors.Is(err, quorum.ErrNotMember) {
		t.Fatalf("Replace of a non-member: %v", err)
	}
	if _, err := abc.Replace(a, b); err == nil {
		t.Fatal("Replace with a member succeeded")
	}

	// The quorum system must fit.
	if _, err := m.NewConfiguration(quorum.Grid(2), a, b, c); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("grid of 2 rows over 3: %v", err)
	}
	if _, err := m.NewConfiguration(quorum.Byzantine(1), a, b, c); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("byzantine f=1 over 3: %v", err)
	}
	if _, err := abc.Remove(a, b, c); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("empty majority: %v", err)
	}
	g, err := abcd.WithSystem(quorum.Grid(2))
	if err != nil || g.ID() != abcd.ID() || g.System().String() != "grid(rows=2)" {
		t.Fatalf("WithSystem: %v, %v", g, err)
	}
	if _, err := g.Remove(d); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("grid after a removal: %v", err)
	}
	if _, err := m.NewConfiguration(nil, a, actor.Ref{}); !errors.Is(err, actor.ErrInvalidRef) {
		t.Fatalf("zero ref: %v", err)
	}

	// Another manager numbers its nodes on its own: configurations of two
	// managers are never equal.
	m2 := newManager(t, sys)
	if other := config(t, m2, nil, a, b, c); other.Equal(abc) {
		t.Fatal("configurations of two managers are equal")
	}
}

// Nodes that no configuration holds any more are forgotten.
func TestManagerForgetsUnusedNodes(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	keep := config(t, m, nil, deadRef(t, sys))
	for range 50 {
		config(t, m, nil, deadRef(t, sys), deadRef(t, sys))
	}
	deadline := time.Now().Add(10 * time.Second)
	for m.Nodes() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d nodes held, want 1", m.Nodes())
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if keep.Node(0).ID() == 0 {
		t.Fatal("kept node lost its id")
	}
}

func TestQuorumSystems(t *testing.T) {
	sys := newSystem(t)
	m := newManager(t, sys)
	refs := make([]actor.Ref, 9)
	for i := range refs {
		refs[i] = deadRef(t, sys)
	}
	set := quorum.NodeSetOf
	type check struct {
		k    quorum.Kind
		set  quorum.NodeSet
		want bool
	}
	for _, tc := range []struct {
		name   string
		sys    quorum.System
		n      int
		checks []check
	}{
		{"majority of 3", quorum.Majority(), 3, []check{
			{quorum.Read, set(0), false}, {quorum.Write, set(0, 2), true}, {quorum.Read, set(0, 1, 2), true}}},
		{"majority of 4", quorum.Majority(), 4, []check{
			{quorum.Read, set(0, 1), false}, {quorum.Read, set(1, 2, 3), true}}},
		{"threshold r1 w3 of 3", quorum.Threshold(1, 3), 3, []check{
			{quorum.Read, set(2), true}, {quorum.Write, set(0, 1), false}, {quorum.Write, set(0, 1, 2), true}}},
		// 3×3 grid, rows 0-2, 3-5, 6-8: a read needs a node of every
		// column, a write a whole column too.
		{"grid 3x3", quorum.Grid(3), 9, []check{
			{quorum.Read, set(0, 1, 2), true},           // a row
			{quorum.Read, set(0, 4, 8), true},           // a diagonal
			{quorum.Read, set(0, 3, 6), false},          // one column only
			{quorum.Write, set(0, 1, 2), false},         // no whole column
			{quorum.Write, set(0, 3, 6, 1, 2), true},    // column 0 and a node of 1 and 2
			{quorum.Write, set(0, 3, 6, 1), false},      // column 2 missing
			{quorum.Write, set(2, 5, 8, 3, 7), true},    // column 2, then 0 and 1
			{quorum.Read, set(0, 1, 3, 4, 6, 7), false}, // column 2 missing
		}},
		{"weighted", quorum.Weighted(map[actor.Ref]int{refs[0]: 3, refs[1]: 0}), 4, []check{
			// votes 3, 0, 1, 1 of 5: more than 2.5 needed
			{quorum.Read, set(0), true}, {quorum.Write, set(1, 2, 3), false}, {quorum.Read, set(0, 1), true}}},
		{"byzantine f=1 of 4", quorum.Byzantine(1), 4, []check{
			{quorum.Read, set(0, 1), false}, {quorum.Write, set(0, 1, 3), true}}},
		{"byzantine f=1 of 5", quorum.Byzantine(1), 5, []check{
			{quorum.Read, set(0, 1, 2), false}, {quorum.Read, set(0, 1, 2, 3), true}}},
	} {
		cfg := config(t, m, tc.sys, refs[:tc.n]...)
		for _, ch := range tc.checks {
			if got := cfg.IsQuorum(ch.k, ch.set); got != ch.want {
				t.Errorf("%s: %s quorum %v = %v, want %v", tc.name, ch.k, ch.set.Positions(), got, ch.want)
			}
		}
	}
	// Any two byzantine quorums share f+1 nodes: check by brute force.
	for n := 4; n <= 7; n++ {
		for f := 0; 3*f+1 <= n; f++ {
			q := quorum.Byzantine(f).Size(n)
			if 2*q-n < f+1 {
				t.Errorf("byzantine n=%d f=%d: quorums of %d share %d < f+1", n, f, q, 2*q-n)
			}
		}
	}
	if _, err := m.NewConfiguration(quorum.Weighted(map[actor.Ref]int{refs[0]: -1}), refs[:2]...); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("negative weight: %v", err)
	}
	if _, err := m.NewConfiguration(quorum.Threshold(4, 1), refs[:3]...); !errors.Is(err, quorum.ErrSystem) {
		t.Fatalf("threshold above the size: %v", err)
	}
}
