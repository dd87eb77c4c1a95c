// Package upgrade swaps a running actor to a new version of its kind, in
// place, as Erlang's code upgrade does for a process: the ref stays valid,
// queued messages stay queued and in order, and the state moves through a
// typed migration. Go cannot load code into a running process, so both
// versions are types compiled into the binary; an upgrade moves one actor
// (or, one call at a time, many) from one to the other.
//
// Apply (or Begin, from inside an actor) carries the upgrade out on the
// actor's loop, between two of its messages: it waits for the continuations
// the old version registered with Then to run (holding new messages
// meanwhile, up to Options.Drain), checks the running instance is of the
// migration's Old type, calls Migration.Forward, and swaps the instance and
// the actor's factory, so later restarts make the new version; if the actor
// is a supervisor's child, the supervisor's Start for it is swapped too. A
// Forward that fails or panics refuses the upgrade (ErrRefused): the old
// version runs on, untouched.
//
// With Options.MaxCrashes or Migration.Health the upgrade is watched for
// Options.Window and rolled back automatically if the new version crashes
// too often or fails its health check: through Migration.Back from the new
// version's state, or from the old factory. The watch is an actor, on the
// loop's clock (actor timers), so it runs deterministically under the
// simulator.
//
// Each outcome is published as a *Report (actor.Context.Report): the event
// hooks and the debugger see it, and an event.Runtime bridge emits it on
// its bus as event.ActorUpgraded. See docs/upgrades.md.
package upgrade
