// Package actor is actord's programming model: actors on per-core event
// loops, synchronous calls between actors of one loop, asynchronous asks with
// continuations across loops, timers, blocking work off the loop, crash
// containment and monitors.
//
// # Model
//
// A [System] runs a group of loops, one goroutine each (by default one per
// GOMAXPROCS). An [Actor] lives on one loop and handles one message at a
// time, to completion, in order: its state needs no locks. A [Ref] is the
// only way to reach an actor, and possessing one is the authority to
// message it.
//
// A handler usually runs on its loop's goroutine, but not always: while
// that goroutine is idle, the loop may be lent to a goroutine that asks
// one of its actors and would only wait for the reply without bound
// anyway ([System.Ask] with a context that has no deadline and cannot be
// cancelled; a transport's network goroutine also runs an idle loop's
// pass), which then runs the handler itself and saves two goroutine
// switches. Handlers never run on two goroutines at once and cannot tell
// by their state; they can by goroutine-local state (runtime.LockOSThread,
// pprof labels). A goroutine must not hold a lock a handler takes while it
// asks so. A panic in a lent handler crashes its actor exactly as on the
// loop's goroutine and never reaches the asker. Asks with a deadline, and
// asks between loops, leave the handler to its loop's goroutine, so their
// deadlines hold; Config.LendTimedAsks lends for those too (deadlines of
// a second or more), at the costs it lists.
//
// Inside a handler the [Context] offers three ways to talk to another actor:
//
//   - [Context.Call] runs the target's handler on the current stack and
//     returns its reply, when the target is on the same loop. It is a
//     function call: no queue, no goroutine switch, no allocation. It refuses
//     another loop's actor (ErrNotLocal) and re-entry (ErrCycle).
//   - [Context.Send] queues a one-way message, for any actor.
//   - [Context.Ask] queues a request and returns a [Promise]. Its
//     continuation, attached with [Promise.Then], runs later on the asking
//     actor's loop, inside the asking actor, so it may use the actor's state.
//     Promises combine with [Context.All] and [Context.First], and every ask
//     has a deadline unless the caller asks for none.
//
// From plain goroutines, [System.Send] and [System.Ask] (blocking, with a
// context.Context) reach any actor.
//
// # Failure
//
// Every message either reaches its receiver or its sender can learn that it
// did not. A panic in a handler is recovered: the caller gets a *CrashError,
// the crash is reported (Config.OnCrash and the event hook), and the actor is
// stopped, or suspended for its supervisor to restart when it was spawned
// [Supervised]. A stopped actor's refs are dead forever: messages to them
// fail with ErrDead, even after the slot is reused. Full queues fail at once
// with ErrQueueFull; a loop never blocks on another loop.
//
// # Determinism
//
// With Config.Manual, a loop.FakeClock and a fixed Config.Seed, a System has
// no goroutines of its own and is driven event by event with [System.Step]:
// the same inputs produce the same sequence of events, which is what the
// simulator and the debugger stand on.
package actor
