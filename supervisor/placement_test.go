package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// fakeCluster places "remote" children on the test's own system: each
// address is a name, Live is what the test says, and a spawn on a node not
// up fails as a node down would.
type fakeCluster struct {
	sys *actor.System
	rec *recorder

	mu     sync.Mutex
	script [][]string // what the next calls of Live return, before live
	live   []string
	up     map[string]bool
	spawns []string // "id@addr" per successful spawn
}

var errFakeDown = errors.New("fake node down")

func newFakeCluster(sys *actor.System, rec *recorder, addrs ...string) *fakeCluster {
	f := &fakeCluster{sys: sys, rec: rec, up: map[string]bool{}}
	f.setLive(addrs...)
	return f
}

func (f *fakeCluster) setLive(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = slices.Clone(addrs)
	clear(f.up)
	for _, a := range addrs {
		f.up[a] = true
	}
}

func (f *fakeCluster) Live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.script) > 0 {
		l := f.script[0]
		f.script = f.script[1:]
		return l
	}
	return slices.Clone(f.live)
}

func (f *fakeCluster) Spawn(ctx context.Context, addr, kind string, args any) (actor.Ref, error) {
	f.mu.Lock()
	up := f.up[addr]
	f.mu.Unlock()
	if !up {
		f.rec.add("spawnfail " + addr)
		return actor.Ref{}, fmt.Errorf("%w: %s", errFakeDown, addr)
	}
	id, _ := args.(string)
	r, err := f.sys.Spawn(ctx, probeF(f.rec, id))
	if err == nil {
		f.mu.Lock()
		f.spawns = append(f.spawns, id+"@"+addr)
		f.mu.Unlock()
	}
	return r, err
}

func TestSpread(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Candidates
		want string
	}{
		{"first of equals", Candidates{Live: []string{"n1", "n2", "n3"}}, "n1"},
		{"fewest placed", Candidates{Live: []string{"n1", "n2", "n3"}, Placed: map[string]int{"n1": 2, "n2": 1, "n3": 1}}, "n2"},
		{"not the previous node", Candidates{Live: []string{"n1", "n2"}, Previous: "n1"}, "n2"},
		{"not the previous node even if less loaded", Candidates{Live: []string{"n1", "n2"}, Previous: "n1", Placed: map[string]int{"n2": 3}}, "n2"},
		{"the previous node when alone", Candidates{Live: []string{"n1"}, Previous: "n1"}, "n1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Spread(tc.c)
			if err != nil || got != tc.want {
				t.Fatalf("Spread = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := Spread(Candidates{}); !errors.Is(err, ErrNoNode) {
		t.Fatalf("Spread of nothing: %v, want ErrNoNode", err)
	}
}

func TestRemoteSpecValidation(t *testing.T) {
	cl := newFakeCluster(nil, nil)
	for _, tc := range []struct {
		cs      ChildSpec
		noClust bool
		field   string
	}{
		{cs: ChildSpec{ID: "r", Remote: Remote{Node: "n1"}}, field: "Remote.Kind"},
		{cs: ChildSpec{ID: "r", Remote: Remote{Kind: "k"}, Start: probeF(nil, "r")}, field: "Start"},
		{cs: ChildSpec{ID: "r", Remote: Remote{Kind: "k"}, Options: []actor.SpawnOption{actor.OnLoop(1)}}, field: "Options"},
		{cs: ChildSpec{ID: "r", Remote: Remote{Kind: "k", StartTimeout: -time.Second}}, field: "Remote.StartTimeout"},
		{cs: ChildSpec{ID: "r", Remote: Remote{Kind: "k"}}, noClust: true, field: "Remote"},
		{cs: ChildSpec{ID: "r"}, field: "Start"},
	} {
		sp := Spec{Cluster: cl, Children: []ChildSpec{tc.cs}}
		if tc.noClust {
			sp.Cluster = nil
		}
		var se *SpecError
		if err := sp.Validate(); !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("%+v: %v, want a SpecError on %s", tc.cs, err, tc.field)
		}
	}
	if err := (Spec{Cluster: cl, Children: []ChildSpec{RemoteWorker("r", Remote{Kind: "k"})}}).Validate(); err != nil {
		t.Fatalf("good remote spec: %v", err)
	}
}

// A child pinned to a node that is down fails its starts; each attempt is
// retried as OTP's try_again and counts towards the intensity, so the
// supervisor gives up; a node back in time lets the retry succeed.
func TestRemotePinnedNodeDown(t *testing.T) {
	reps := newReports()
	sys := realSystem(t, 1, reps.hook)
	rec := newRecorder()
	cl := newFakeCluster(sys, rec, "n1", "n2")
	sup := spawnSup(t, sys, Spec{MaxR: 2, MaxT: time.Hour, Cluster: cl,
		Children: []ChildSpec{RemoteWorker("p", Remote{Kind: "probe", Args: "p", Node: "n2"})}})
	rec.waitLine(t, "start p")
	p := refOf(children(t, sys, sup), "p")
	cl.setLive("n1") // n2 goes
	send(t, sys, p, "crash")
	rec.waitLine(t, "spawnfail n2") // restart 1 fails
	rec.waitLine(t, "spawnfail n2") // retry: restart 2 fails
	rep := reps.wait(t, GaveUp)     // retry: restart 3 > MaxR
	if !errors.Is(rep.Reason, ErrTooManyRestarts) {
		t.Fatalf("gave up with %v", rep.Reason)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if !slices.Equal(cl.spawns, []string{"p@n2"}) {
		t.Fatalf("spawns %v: the pinned child went elsewhere", cl.spawns)
	}
}

// With no live node a start fails with ErrNoNode, and is retried; once a
// node is live the retry places the child there (the next live one: the
// previous node is down).
func TestRemoteNoLiveNode(t *testing.T) {
	reps := newReports()
	sys := realSystem(t, 1, reps.hook)
	rec := newRecorder()
	cl := newFakeCluster(sys, rec, "n1")
	sup := spawnSup(t, sys, Spec{MaxR: 1000, MaxT: time.Hour, Cluster: cl,
		Children: []ChildSpec{RemoteWorker("p", Remote{Kind: "probe", Args: "p"})}})
	rec.waitLine(t, "start p")
	cl.mu.Lock()
	cl.script = [][]string{nil} // the restart finds no node, its retry n2
	cl.mu.Unlock()
	cl.setLive("n2")
	send(t, sys, refOf(children(t, sys, sup), "p"), "crash")
	if rep := reps.wait(t, ChildStartFailed); !errors.Is(rep.Reason, ErrNoNode) {
		t.Fatalf("start failed with %v, want ErrNoNode", rep.Reason)
	}
	rec.waitLine(t, "start p")
	ch := waitChildren(t, sys, sup, "p running", running("p"))
	if ch[0].Node != "n2" {
		t.Fatalf("p on %q, want n2", ch[0].Node)
	}
}

// A placement that fails, or picks a node that is not live, fails the
// start with ErrNoNode; Candidates tell it the previous node and why that
// instance ended.
func TestRemoteCustomPlacement(t *testing.T) {
	reps := newReports()
	sys := realSystem(t, 1, reps.hook)
	rec := newRecorder()
	cl := newFakeCluster(sys, rec, "n1", "n2")
	var mu sync.Mutex
	var seen []Candidates
	picks := []string{"n1", "elsewhere", "n2"} // start, restart, its retry
	place := func(c Candidates) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c)
		return picks[min(len(seen), len(picks))-1], nil
	}
	sup := spawnSup(t, sys, Spec{MaxR: 1000, MaxT: time.Hour, Cluster: cl,
		Children: []ChildSpec{RemoteWorker("p", Remote{Kind: "probe", Args: "p", Place: place})}})
	rec.waitLine(t, "start p")
	send(t, sys, refOf(children(t, sys, sup), "p"), exitMsg{errBoom})
	if rep := reps.wait(t, ChildStartFailed); !errors.Is(rep.Reason, ErrNoNode) {
		t.Fatalf("start failed with %v, want ErrNoNode", rep.Reason)
	}
	rec.waitLine(t, "start p")
	mu.Lock()
	defer mu.Unlock()
	if first := seen[0]; first.Child != "p" || first.Previous != "" || first.Reason != nil || !slices.Equal(first.Live, []string{"n1", "n2"}) {
		t.Fatalf("first candidates %+v", first)
	}
	if second := seen[1]; second.Previous != "n1" || !errors.Is(second.Reason, errBoom) {
		t.Fatalf("candidates after the exit %+v, want previous n1 and reason boom", second)
	}
	if len(seen) != 3 {
		t.Fatalf("placed %d times, want 3", len(seen))
	}
}
