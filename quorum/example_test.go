package quorum_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/quorum"
)

// The messages of a replicated register: a read answers the replica's
// version and value.
type (
	Read    struct{}
	Version struct {
		N     int
		Value string
	}
)

// register is one replica.
type register struct{ v Version }

func (r *register) Receive(_ *actor.Context, msg any) (any, error) {
	if _, ok := msg.(Read); ok {
		return r.v, nil
	}
	return nil, actor.Unhandled(msg)
}

// replicas spawns one register per version.
func replicas(sys *actor.System, vs ...Version) []actor.Ref {
	var refs []actor.Ref
	for _, v := range vs {
		r, _ := sys.Spawn(context.Background(), func() actor.Actor { return &register{v: v} })
		refs = append(refs, r)
	}
	return refs
}

// Configurations are values: Add, Remove and Replace return new ones, and
// equal sets have equal ids.
func ExampleConfiguration() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	m, _ := quorum.NewManager(sys, quorum.ManagerConfig{})
	defer m.Close(context.Background())

	r := replicas(sys, Version{}, Version{}, Version{}, Version{})
	abc, _ := m.NewConfiguration(quorum.Majority(), r[0], r[1], r[2])
	abcd, _ := abc.Add(r[3])
	bcd, _ := abcd.Remove(r[0])
	dbc, _ := abc.Replace(r[0], r[3])
	fmt.Println(abc.Size(), abcd.Size(), bcd.Size(), bcd.ID() == dbc.ID(), abc.ID() == bcd.ID())
	grid, _ := abcd.WithSystem(quorum.Grid(2))
	fmt.Println(grid.System(), grid.ID() == abcd.ID())
	// Output:
	// 3 4 3 true false
	// grid(rows=2) true
}

// newestOfMajority is a quorum function: once a majority has replied, the
// reply with the highest version among them.
func newestOfMajority(_ Read, rs *quorum.Replies[Version]) (Version, bool, error) {
	if !rs.IsQuorum(quorum.Read) {
		if !rs.Reachable(quorum.Read) {
			return Version{}, false, errors.New("a majority is gone")
		}
		return Version{}, false, nil // wait for more
	}
	best := rs.Values()[0].Value
	for _, r := range rs.Values() {
		if r.Value.N > best.N {
			best = r.Value
		}
	}
	return best, true, nil
}

// An actor reads the register from a majority of three replicas, one of
// which is gone, with its own quorum function; the loop never blocks.
func ExampleAsk() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	m, _ := quorum.NewManager(sys, quorum.ManagerConfig{})
	defer m.Close(context.Background())

	r := replicas(sys, Version{2, "new"}, Version{2, "new"})
	gone := replicas(sys, Version{})[0] // stopped below: asks to it fail
	stopper, _ := sys.Spawn(context.Background(), func() actor.Actor {
		return fnActor(func(c *actor.Context, msg any) (any, error) { return nil, c.Stop(msg.(actor.Ref), nil) })
	})
	_, _ = sys.Ask(context.Background(), stopper, gone)
	cfg, _ := m.NewConfiguration(quorum.Majority(), r[0], r[1], gone)

	read := quorum.Spec[Read, Version, Version]{Quorum: newestOfMajority, Timeout: time.Second}
	done := make(chan string)
	reader, _ := sys.Spawn(context.Background(), func() actor.Actor {
		return fnActor(func(c *actor.Context, _ any) (any, error) {
			quorum.Ask(c, cfg, Read{}, read).Then(func(c *actor.Context, v Version, err error) {
				done <- fmt.Sprint(v, err)
			})
			return nil, nil
		})
	})
	_ = sys.Send(reader, "read")
	fmt.Println(<-done)
	// Output: {2 new} <nil>
}

// A plain goroutine makes the same call through a Caller, with a built-in
// quorum function: the highest version among a read quorum.
func ExampleCall() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	m, _ := quorum.NewManager(sys, quorum.ManagerConfig{})
	defer m.Close(context.Background())

	cfg, _ := m.NewConfiguration(quorum.Majority(), replicas(sys, Version{1, "old"}, Version{3, "newest"}, Version{3, "newest"})...)
	newest := quorum.Spec[Read, Version, Version]{
		Quorum: quorum.Highest[Read](quorum.Read, func(a, b Version) bool { return a.N < b.N }),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := quorum.Call(ctx, m.Caller(), cfg, Read{}, newest)
	// Any two of the three include a newest one.
	fmt.Println(v, err)
	// Output: {3 newest} <nil>
}

// A byzantine configuration of four replicas, one of which lies: the read
// settles on a value that f+1 = 2 replicas vouch for.
func ExampleMatching() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	m, _ := quorum.NewManager(sys, quorum.ManagerConfig{})
	defer m.Close(context.Background())

	byz := quorum.Byzantine(1)
	cfg, _ := m.NewConfiguration(byz, replicas(sys, Version{9, "forged"}, Version{4, "true"}, Version{4, "true"}, Version{4, "true"})...)
	vouched := quorum.Spec[Read, Version, Version]{
		Quorum: quorum.Matching[Read](quorum.Read, byz.F()+1, func(v Version) Version { return v }),
	}
	v, err := quorum.Call(context.Background(), m.Caller(), cfg, Read{}, vouched)
	fmt.Println(v, err)
	// Output: {4 true} <nil>
}

// A correctable read reports a result as soon as one replica answered, and
// better ones as more agree.
func ExampleCallCorrectable() {
	sys := actor.NewSystem(actor.Config{})
	defer sys.Shutdown(context.Background())
	m, _ := quorum.NewManager(sys, quorum.ManagerConfig{})
	defer m.Close(context.Background())

	cfg, _ := m.NewConfiguration(nil, replicas(sys, Version{4, "v"}, Version{4, "v"}, Version{4, "v"})...)
	agree := quorum.CorrectableSpec[Read, Version, Version]{
		Levels: quorum.MatchingLevels[Read](3, func(v Version) int { return v.N }),
	}
	cr := quorum.CallCorrectable(context.Background(), m.Caller(), cfg, Read{}, agree)
	<-cr.Watch(1) // the first, preliminary result
	v, level, err := cr.Get()
	fmt.Println(v, level >= 1, err)
	<-cr.Done() // all three agree: final
	v, level, err = cr.Get()
	fmt.Println(v, level, err)
	// Output:
	// {4 v} true <nil>
	// {4 v} 3 <nil>
}
