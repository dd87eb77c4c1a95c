package appreg

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func mustApply(t *testing.T, s *State, c Command) {
	t.Helper()
	if err := s.Apply(s.Index()+1, c); err != nil {
		t.Fatalf("%v %s: %v", c.Op, c.App, err)
	}
}

func TestAssignIsCompareAndSet(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a"})
	assign := Command{Op: OpAssign, App: "a", Node: "n1", Gen: 0}
	mustApply(t, s, assign)
	// The same assignment again (a duplicated proposal) is stale.
	if err := s.Apply(s.Index()+1, assign); !errors.Is(err, ErrStaleGen) {
		t.Fatalf("duplicate assign: %v, want ErrStaleGen", err)
	}
	if a, _ := s.App("a"); a.Gen != 1 || a.Node != "n1" {
		t.Fatalf("after a duplicate assign: %+v", a)
	}
	mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n2", Gen: 1})
	// A late renewal of the previous holder is refused.
	if err := s.Apply(s.Index()+1, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second}); !errors.Is(err, ErrNotAssigned) {
		t.Fatalf("stale renewal: %v, want ErrNotAssigned", err)
	}
	a, _ := s.App("a")
	if a.Renewals != 1 || a.RenewGen != 1 || a.Gen != 2 || a.Node != "n2" {
		t.Fatalf("state: %+v", a)
	}
}

// Remove keeps the generation history, so a redeployed application's new
// holder still waits for the old holder's lease.
func TestRemoveKeepsGenerations(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a", Spec: []byte("x")})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1"})
	mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second})
	mustApply(t, s, Command{Op: OpRemove, App: "a"})
	if err := s.Apply(s.Index()+1, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second}); !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("renewal of a removed app: %v", err)
	}
	mustApply(t, s, Command{Op: OpDeploy, App: "a"})
	a, _ := s.App("a")
	if a.Gen != 1 || a.Node != "" || a.Renewals != 1 || a.Desired != Running || a.Spec != nil {
		t.Fatalf("redeployed: %+v", a)
	}
	if err := s.Apply(s.Index()+1, Command{Op: OpAssign, App: "a", Node: "n2", Gen: 0}); !errors.Is(err, ErrStaleGen) {
		t.Fatalf("assign from generation 0 after a redeploy: %v", err)
	}
}

func TestStoppedIsNotRenewedNorAssigned(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a"})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1"})
	mustApply(t, s, Command{Op: OpStop, App: "a"})
	if err := s.Apply(s.Index()+1, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("renewal while stopped: %v", err)
	}
	if err := s.Apply(s.Index()+1, Command{Op: OpAssign, App: "a", Node: "n2", Gen: 1}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("assign while stopped: %v", err)
	}
	mustApply(t, s, Command{Op: OpStart, App: "a"})
	mustApply(t, s, Command{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: time.Second})
}

func TestLimits(t *testing.T) {
	s := NewState()
	for i := range MaxApps {
		mustApply(t, s, Command{Op: OpDeploy, App: fmt.Sprint("app", i)})
	}
	if err := s.Apply(s.Index()+1, Command{Op: OpDeploy, App: "one-more"}); !errors.Is(err, ErrLimit) {
		t.Fatalf("deploy beyond MaxApps: %v", err)
	}
	mustApply(t, s, Command{Op: OpRemove, App: "app0"})
	mustApply(t, s, Command{Op: OpDeploy, App: "one-more"})
	bad := []Command{
		{Op: OpDeploy, App: ""},
		{Op: OpDeploy, App: strings.Repeat("x", MaxNameLen+1)},
		{Op: OpDeploy, App: "a", Spec: make([]byte, MaxSpecSize+1)},
		{Op: OpDeploy, App: "a", Prefer: make([]string, MaxPrefer+1)},
		{Op: OpDeploy, App: "a", Prefer: []string{""}},
		{Op: OpAssign, App: "a"},
		{Op: OpRenew, App: "a", Node: "n1", Gen: 1},
		{Op: OpRenew, App: "a", Node: "n1", Gen: 1, Lease: MaxLease + 1},
		{Op: 99, App: "a"},
	}
	for _, c := range bad {
		if _, err := EncodeCommand(c); err == nil {
			t.Errorf("encoded %+v", c)
		}
		before := fmt.Sprint(s.Apps())
		if err := s.Apply(s.Index()+1, c); err == nil {
			t.Errorf("applied %+v", c)
		}
		if fmt.Sprint(s.Apps()) != before {
			t.Errorf("rejected %+v changed the state", c)
		}
	}
}

func TestDecodeCommandRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil, []byte("{"), []byte(`{"op":1}`), []byte(`{"op":"deploy","app":"a"}`),
		append([]byte(`{"op":1,"app":"a","spec":"`), append(bytes.Repeat([]byte("A"), MaxCommandSize), '"', '}')...),
	} {
		if _, err := DecodeCommand(b); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("decode %.40q: %v", b, err)
		}
	}
	b, err := EncodeCommand(Command{Op: OpDeploy, App: "a", Spec: make([]byte, MaxSpecSize), Prefer: []string{strings.Repeat("n", MaxNameLen)}})
	if err != nil {
		t.Fatalf("largest valid command: %v", err)
	}
	if _, err := DecodeCommand(b); err != nil {
		t.Fatalf("decode the largest valid command: %v", err)
	}
}

func randomCommand(rng *rand.Rand) Command {
	app := fmt.Sprint("app", rng.IntN(5))
	node := fmt.Sprint("n", rng.IntN(3))
	switch rng.IntN(7) {
	case 5:
		return Command{Op: OpRelease, App: app, Node: node, Gen: uint64(rng.IntN(3)) + 1, To: fmt.Sprint("n", 3+rng.IntN(2)),
			Inc: uint64(rng.IntN(2)) + 1, Clean: rng.IntN(2) == 0, Handover: []byte{byte(rng.IntN(256))}}
	case 0:
		return Command{Op: OpDeploy, App: app, Spec: []byte{byte(rng.IntN(256))}, Prefer: []string{node}, Takeover: rng.IntN(2) == 0}
	case 1:
		return Command{Op: OpStop, App: app}
	case 2:
		return Command{Op: OpStart, App: app}
	case 3:
		return Command{Op: OpRemove, App: app}
	case 4:
		return Command{Op: OpAssign, App: app, Node: node, Gen: uint64(rng.IntN(3))}
	}
	return Command{Op: OpRenew, App: app, Node: node, Gen: uint64(rng.IntN(3)), Lease: time.Second, Inc: uint64(rng.IntN(2)) + 1}
}

// The same commands give the same bytes; a snapshot restores the same state,
// which then applies the same commands the same way.
func TestApplyDeterministicAndSnapshotRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := NewState(), NewState()
	var restored *State
	for i := range 2000 {
		c := randomCommand(rng)
		ea := a.Apply(uint64(i+1), c)
		eb := b.Apply(uint64(i+1), c)
		if (ea == nil) != (eb == nil) {
			t.Fatalf("command %d: %v vs %v", i, ea, eb)
		}
		if restored != nil {
			if er := restored.Apply(uint64(i+1), c); (er == nil) != (ea == nil) {
				t.Fatalf("restored state, command %d: %v vs %v", i, er, ea)
			}
		}
		if i == 1000 {
			data, err := a.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if restored, err = UnmarshalState(data); err != nil {
				t.Fatal(err)
			}
		}
	}
	da, _ := a.Marshal()
	db, _ := b.Marshal()
	dr, _ := restored.Marshal()
	if !bytes.Equal(da, db) || !bytes.Equal(da, dr) {
		t.Fatal("states differ")
	}
}

func TestUnmarshalStateRejects(t *testing.T) {
	for _, b := range [][]byte{
		[]byte("{"),
		[]byte(`{"apps":[null]}`),
		[]byte(`{"apps":[{"name":"","desired":1}]}`),
		[]byte(`{"apps":[{"name":"a","desired":9}]}`),
		[]byte(`{"apps":[{"name":"a","desired":1},{"name":"a","desired":1}]}`),
		make([]byte, MaxStateSize+1),
	} {
		if _, err := UnmarshalState(b); err == nil {
			t.Errorf("accepted %.40q", b)
		}
	}
}

// A conditional deploy applies only to the record it expects: desired
// running, its spec's hash, its generation. Anything else (another
// deploy, a stop, a removal, a failover) rejects it and changes nothing.
func TestConditionalDeployIsCompareAndSet(t *testing.T) {
	s := NewState()
	mustApply(t, s, Command{Op: OpDeploy, App: "a", Spec: []byte("v1")})
	mustApply(t, s, Command{Op: OpAssign, App: "a", Node: "n1"})
	cas := Command{Op: OpDeploy, App: "a", Spec: []byte("v2"), IfSpec: SpecHash([]byte("v1")), Gen: 1}
	reject := func(what string, c Command) {
		t.Helper()
		before, _ := s.App(c.App)
		if err := s.Apply(s.Index()+1, c); !errors.Is(err, ErrConflict) {
			t.Fatalf("%s: %v, want ErrConflict", what, err)
		}
		if after, _ := s.App(c.App); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Fatalf("%s changed the record: %+v -> %+v", what, before, after)
		}
	}
	reject("another spec expected", Command{Op: OpDeploy, App: "a", Spec: []byte("v2"), IfSpec: SpecHash([]byte("v0")), Gen: 1})
	reject("another generation expected", Command{Op: OpDeploy, App: "a", Spec: []byte("v2"), IfSpec: cas.IfSpec, Gen: 0})
	reject("an unknown application", Command{Op: OpDeploy, App: "b", Spec: []byte("v2"), IfSpec: cas.IfSpec})
	mustApply(t, s, Command{Op: OpStop, App: "a"})
	reject("a stopped application", cas)
	mustApply(t, s, Command{Op: OpStart, App: "a"})
	mustApply(t, s, cas)
	if a, _ := s.App("a"); string(a.Spec) != "v2" || a.Desired != Running || a.Gen != 1 {
		t.Fatalf("after the conditional deploy: %+v", a)
	}
	reject("the same deploy again", cas)
	mustApply(t, s, Command{Op: OpRemove, App: "a"})
	reject("a removed application", Command{Op: OpDeploy, App: "a", Spec: []byte("v3"), IfSpec: SpecHash(nil), Gen: 1})
	if a, _ := s.App("a"); a.Desired != Removed {
		t.Fatalf("a removed application revived: %+v", a)
	}
	// Its shape is checked like any command's.
	bad := cas
	bad.IfSpec = "xyz"
	if _, err := EncodeCommand(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a malformed if_spec: %v, want ErrMalformed", err)
	}
	b, err := EncodeCommand(cas)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := DecodeCommand(b); err != nil || c.IfSpec != cas.IfSpec || c.Gen != cas.Gen {
		t.Fatalf("round trip: %+v %v", c, err)
	}
}
