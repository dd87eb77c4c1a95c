package seam

import "errors"

// Upgrader returns the upgrade seam of sys, an *actor.System: a value with
// the methods
//
//	Swap(c *actor.Context, r actor.Ref, drain time.Duration, f SwapFunc) actor.Promise
//	Run(c *actor.Context, r actor.Ref, f func(c *actor.Context, a actor.Actor) (any, error)) actor.Promise
//	WatchCrashes(c *actor.Context, watcher actor.Ref, on bool)
//	Watcher(c *actor.Context) actor.Ref
//
// (SwapFunc is func(c *actor.Context, a actor.Actor, factory actor.Factory,
// pending int) (actor.Actor, actor.Factory, error)), documented in
// actor/upgrade.go. Package upgrade is its user. Package actor sets it at
// init; it panics for anything but an *actor.System.
var Upgrader func(sys any) any

// ErrDraining is the error of a swap asked for while another swap of the
// same actor waits for its continuations to settle.
var ErrDraining = errors.New("actor: another swap of this actor is draining")

// CrashWatchEnded is sent to the watcher of an actor's crashes when a swap
// of that actor replaces the version it watched (see Upgrader): its watch
// has ended.
type CrashWatchEnded struct{}
