// Package supervisor builds Erlang/OTP supervision trees out of actors, and
// runs a daemon's goroutine-level services (the loops) under suture/v4.
//
// # Supervisors
//
// New(spec) is the factory of a supervisor actor that behaves as OTP's
// supervisor module (OTP 26 and later); docs/supervision.md states its
// semantics point by point against OTP's and lists the differences. Its
// children, described by ChildSpecs (checked field by field: a *SpecError
// names a bad one), are spawned with actor.Supervised and linked to it; it
// traps exits. When a child crashes (actor.Crashed) or stops by itself
// (actor.Exited), the supervisor applies, in this order:
//
//   - the child's RestartType: Permanent always restarts, Transient only
//     after an abnormal end (a crash, or a reason other than nil or one
//     matching actor.ErrShutdown), Temporary never (and the child is
//     forgotten); a significant child that is not restarted may shut the
//     supervisor down (Spec.AutoShutdown);
//   - the restart intensity: more than Spec.MaxR restarts within Spec.MaxT
//     (default 1 in 5 s, as Erlang) make it give up: it stops all its
//     children in reverse start order and stops itself with a reason
//     matching actor.ErrShutdown (OTP's shutdown, so a transient parent does
//     not restart it) and ErrTooManyRestarts;
//   - the Strategy: OneForOne, OneForAll, RestForOne, SimpleOneForOne.
//     OneForAll and RestForOne restart every child of the group still in the
//     list, running or not, as OTP's.
//
// A restart whose start fails counts as another restart and is retried,
// through a message the supervisor sends itself (OTP's try_again_restart),
// so the requests and the parent's exit that arrived meanwhile are handled
// first; the child shows as ChildRestarting. A start that returns
// ErrIgnore is not a failure: the child is kept, not running (OTP's
// ignore).
//
// Restarts are in place when the child's slot still exists (it crashed, or
// it was taken down with a crashed sibling): actor.Context.Restart
// re-creates it from its factory and every ref to it stays valid, messages
// sent meanwhile are delivered to the new instance, and the message that
// crashed it is reported, not redelivered. A child that stopped (its refs are
// dead) is spawned afresh; WhichChildren gives the current refs.
//
// # Children on other loops
//
// ChildSpec.Options may place a child on another loop (actor.OnLoop). Every
// stop, take-down and restart of such a child is a request to its loop with
// an acknowledgement (actor.Context.StopAsync, SuspendAsync, RestartAsync):
// the supervisor never blocks its loop, and works through its steps one at a
// time, holding the events that arrive meanwhile, so the strategies keep
// their meaning: under OneForAll the siblings on the other loop have ended
// before anything restarts.
//
// # Children on other nodes
//
// ChildSpec.Remote places a child on another node of Spec.Cluster
// (remote.NodeSet over a remote.Node): it is made there from a registered
// kind at every start and restart, on a node pinned by Remote.Node or
// picked by Remote.Place (default Spread) among the live ones. The spawn
// runs on the system's worker pool, so the supervisor's loop never blocks.
// The child is linked to the supervisor: its crash, its stop and the loss
// of its node (a reason matching remote.ErrNodeDown) are exits handled by
// the restart type, the intensity and the strategy as a local child's;
// stops are acknowledged, with the shutdown timeout and then a kill. A
// remote child is never restarted in place (its ref changes); a remote
// child supervisor follows its parent's exit as a local one. In a
// partition the old instance may run on for a while beside the new one;
// docs/supervision.md, "Remote children", has the guarantees and limits.
//
// # Shutdown timeouts and kills
//
// A stop on the supervisor's own loop is synchronous: the child's Terminate
// runs at once and nothing can interrupt it (a Terminate that hangs stalls
// the loop, which the actor watchdog reports). ChildSpec.Shutdown matters
// where waiting is possible: for a child on another loop, whose loop may be
// stuck in a long handler, and for a child supervisor, which first stops its
// own subtree (Infinity by default). If the acknowledgement does not come
// within the timeout, the supervisor reports the child killed (ChildKilled)
// and carries on, and the request turns into a kill: when the child's loop
// gets to it, the child ends without running Terminate (reason
// actor.ErrKilled), even if the supervisor has stopped meanwhile.
// BrutalKill kills at once, on any loop, without Terminate. A child's
// Terminate may end it with a reason of its own (see actor.Terminator); one
// OTP would not accept is reported (ShutdownError).
//
// # Reports
//
// Every crash, exit, restart, failed start, kill, shutdown error and
// give-up produces a Report: logged through Spec.Logger (log/slog) and
// published to the loop's event hook as an actor.EventReport whose Msg is
// the *Report. A report nobody would read (no hook, a logger that discards
// its level) is not built.
//
// # The service tree
//
// NewServiceTree runs the loops of an actor.System made with
// actor.Config.ExternalLoops as suture services under one root, so a loop
// whose goroutine dies is restarted. Suture catches what escapes a loop; it
// never sees actor panics, which the loop recovers and the supervisors
// above handle.
package supervisor
