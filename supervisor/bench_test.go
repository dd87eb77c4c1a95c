package supervisor

import (
	"context"
	"runtime/debug"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/loop"
)

// crasher panics on every message.
type crasher struct{}

func (crasher) Receive(*actor.Context, any) (any, error) { panic("bench crash") }

// BenchmarkRestart measures one crash and restart: a child panics in its
// handler (the loop recovers it, records the stack, suspends the child and
// tells its parent), and its one_for_one supervisor, on the same loop,
// restarts it in place. The system is driven by hand (Config.Manual), so
// the op also includes posting the message that makes the child crash, and
// on a fake clock (a running loop reads the wall clock once per pass, not
// once per step), advanced by 1 µs per op so that the intensity window
// (MaxT 1 ms) moves.
//
// It runs with actor.Config.LazyStacks (the stack is recorded as program
// counters); BenchmarkRestartTextStack shows the default, which formats the
// stack as text at every crash.
func BenchmarkRestart(b *testing.B) { benchRestart(b, true) }

// BenchmarkRestartTextStack is BenchmarkRestart with the default crash
// stacks (formatted as text by debug.Stack at the crash).
func BenchmarkRestartTextStack(b *testing.B) { benchRestart(b, false) }

func benchRestart(b *testing.B, lazy bool) {
	clk := loop.NewFakeClock(time.Unix(0, 0))
	s := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Clock: clk, Logger: quiet, OnCrash: func(*actor.Crash) {}, LazyStacks: lazy})
	defer s.Shutdown(context.Background())
	sup, err := s.Spawn(context.Background(), New(Spec{MaxR: 1 << 30, MaxT: time.Millisecond, Logger: quiet,
		Children: []ChildSpec{Worker("c", func() actor.Actor { return crasher{} })}}))
	if err != nil {
		b.Fatal(err)
	}
	v, err := s.Ask(context.Background(), sup, WhichChildren{})
	if err != nil {
		b.Fatal(err)
	}
	child := v.([]ChildInfo)[0].Ref
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := s.Send(child, 0); err != nil {
			b.Fatal(err)
		}
		s.RunUntilIdle(4)
		clk.Advance(time.Microsecond)
	}
	b.StopTimer()
	if cs, _ := s.Ask(context.Background(), sup, WhichChildren{}); !cs.([]ChildInfo)[0].Running {
		b.Fatal("child not running at the end")
	}
}

// BenchmarkBaselineRecover is a plain Go panic and recover: the floor of
// any crash handling.
func BenchmarkBaselineRecover(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		func() {
			defer func() { _ = recover() }()
			panic("bench crash")
		}()
	}
}

// BenchmarkBaselineRecoverStack is a panic, a recover and debug.Stack: what
// any crash report with a stack costs.
func BenchmarkBaselineRecoverStack(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		func() {
			defer func() {
				if recover() != nil {
					_ = debug.Stack()
				}
			}()
			panic("bench crash")
		}()
	}
}
