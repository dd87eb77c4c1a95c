package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// The guard is the actor that carries out an upgrade and then watches it:
// every decision (refuse, roll back) is taken on its loop from messages and
// timers of the loop's clock, so a run under a simulator is reproducible.

// guard carries out one upgrade. It is spawned on the target's loop and is
// never restarted (its factory returns the same instance).
type guard struct {
	target   actor.Ref
	from, to string
	opts     Options
	log      *slog.Logger
	watch    bool        // roll back on crashes or a failed health check
	done     func(error) // called once, with the outcome of the swap (see finish)
	answered bool
	factory  actor.Factory // the guard's own

	// from the migration
	forward func(a actor.Actor) (actor.Actor, error)
	back    func(a actor.Actor) (actor.Actor, error) // nil without Back
	health  func(a actor.Actor) error                // nil without Health
	isNew   func(a actor.Actor) bool
	newF    actor.Factory

	// learnt during the upgrade (prevF and parent written in the swap's
	// function, on the target's loop, which is the guard's; prevStart is
	// the value of the supervisor's hook's promise)
	prevF     actor.Factory // the target's factory before the upgrade
	parent    actor.Ref
	prevStart actor.Factory // the supervisor's Start for it before, if supervised
	sup       bool          // the parent is a supervisor and took the new Start

	// live: the upgrade is reported and its watch started. Until then the
	// runtime's messages to the watch wait in early: a rollback must not
	// overtake the supervisor's hook, or that hook would install the new
	// Start after the rollback.
	live  bool
	early []any

	crashes  int
	checking bool // a health check is under way
	ticker   actor.Timer
	over     bool // rolled back, or the window passed
}

// Messages of the guard to itself.
type (
	windowEnd  struct{}
	healthTick struct{}
)

func newGuard[Old, New actor.Actor](ref actor.Ref, m Migration[Old, New], o Options, done func(error)) (*guard, error) {
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("%w: %v: %w: %w", ErrRefused, ref, ErrBadMigration, err)
	}
	if o.Drain == 0 {
		o.Drain = DefaultDrain
	}
	watch := o.MaxCrashes > 0 || m.Health != nil
	if watch && o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.HealthEvery <= 0 {
		o.HealthEvery = DefaultHealthEvery
	}
	g := &guard{target: ref, from: m.From, to: m.To, opts: o, log: o.Logger, watch: watch, done: done,
		forward: func(a actor.Actor) (actor.Actor, error) { return m.forward(ref, a) },
		newF:    func() actor.Actor { return m.Factory() }, isNew: m.isNew}
	if g.log == nil {
		g.log = slog.Default()
	}
	if m.Back != nil {
		g.back = m.back
	}
	if m.Health != nil {
		g.health = m.health
	}
	g.factory = func() actor.Actor { return g }
	return g, nil
}

func (g *guard) spawnOpts() []actor.SpawnOption {
	return []actor.SpawnOption{actor.OnLoop(g.target.Loop()), actor.Name("upgrade " + g.from + " -> " + g.to)}
}

// Start asks for the swap on the target's loop.
func (g *guard) Start(c *actor.Context) error {
	self := c.Self()
	view.Swap(c, g.target, g.opts.Drain, func(c *actor.Context, a actor.Actor, f actor.Factory, pending int) (actor.Actor, actor.Factory, error) {
		if pending > 0 {
			if g.opts.Drain < 0 {
				return nil, nil, fmt.Errorf("%w: %d continuations of %s outstanding (no drain)", ErrPending, pending, g.from)
			}
			return nil, nil, fmt.Errorf("%w: %d continuations of %s had not run when the wait ended (drain %v)",
				ErrPending, pending, g.from, g.opts.Drain)
		}
		if a == nil {
			return nil, nil, ErrSuspended
		}
		n, err := g.forward(a)
		if err != nil {
			return nil, nil, err
		}
		g.prevF, g.parent = f, c.Parent()
		if g.parent.IsRemote() {
			// Spawned for an owner of another node (a linked remote
			// spawn): its restarts are new spawns of its kind there, no
			// local Start to swap.
			g.parent = actor.Ref{}
		}
		if g.watch {
			view.WatchCrashes(c, self, true) // with the swap: no crash of the new version is missed
		}
		return n, g.newF, nil
	}).Then(g.swapped)
	return nil
}

// swapped handles the outcome of the swap.
func (g *guard) swapped(c *actor.Context, _ any, err error) {
	if err != nil {
		if errors.Is(err, seam.ErrDraining) {
			err = fmt.Errorf("%w: %w", ErrBusy, err)
		}
		err = fmt.Errorf("%w: %v %s -> %s: %w", ErrRefused, g.target, g.from, g.to, err)
		g.report(c, Refused, g.from, g.to, err)
		g.finish(err)
		_ = c.Stop(c.Self(), nil)
		return
	}
	if g.parent.IsZero() {
		g.upgraded(c)
		return
	}
	// Its supervisor's restarts must make the new version too: a restart
	// in place uses the factory just swapped, a fresh spawn the spec's
	// Start, swapped here.
	view.Run(c, g.parent, func(_ *actor.Context, a actor.Actor) (any, error) {
		u, ok := a.(childUpgrader)
		if !ok {
			return nil, nil
		}
		prev, err := u.UpgradeChild(g.target, g.newF)
		if err != nil {
			return nil, err
		}
		return prev, nil
	}).Then(func(c *actor.Context, v any, err error) {
		if prev, ok := v.(actor.Factory); ok && err == nil && prev != nil {
			g.prevStart, g.sup = prev, true
		}
		if err != nil && !errors.Is(err, actor.ErrDead) {
			g.log.Warn("upgrade: the supervisor did not take the new version's Start",
				"actor", g.target.String(), "supervisor", g.parent.String(), "from", g.from, "to", g.to, "err", err)
		}
		g.upgraded(c)
	})
}

// upgraded reports the upgrade and starts the watch, if any.
func (g *guard) upgraded(c *actor.Context) {
	g.report(c, Upgraded, g.from, g.to, nil)
	g.finish(nil)
	if !g.watch {
		_ = c.Stop(c.Self(), nil)
		return
	}
	_ = c.Monitor(g.target)
	c.After(g.opts.Window, windowEnd{})
	if g.health != nil {
		g.ticker = c.Every(g.opts.HealthEvery, healthTick{})
	}
	g.live = true
	early := g.early
	g.early = nil
	for _, msg := range early {
		_, _ = g.Receive(c, msg)
	}
}

// finish answers Apply or Begin, once.
func (g *guard) finish(err error) {
	if !g.answered {
		g.answered = true
		g.done(err)
	}
}

// Terminate answers Apply or Begin if the guard is stopped before the swap
// did (the system shuts down): the upgrade may or may not have happened.
func (g *guard) Terminate(_ *actor.Context, reason error) {
	if g.answered {
		return
	}
	if reason == nil {
		g.finish(fmt.Errorf("%w: %v %s -> %s: its guard stopped", ErrOutcomeUnknown, g.target, g.from, g.to))
		return
	}
	g.finish(fmt.Errorf("%w: %v %s -> %s: its guard stopped: %w", ErrOutcomeUnknown, g.target, g.from, g.to, reason))
}

// Receive handles the watch: crashes of the target, health ticks, the end
// of the window, the target's end.
func (g *guard) Receive(c *actor.Context, msg any) (any, error) {
	if !g.live {
		switch msg.(type) {
		case *actor.Crash, seam.CrashWatchEnded:
			g.early = append(g.early, msg)
		}
		return nil, nil
	}
	switch m := msg.(type) {
	case *actor.Crash:
		if g.over || m.Actor != g.target {
			return nil, nil
		}
		g.crashes++
		if g.opts.MaxCrashes > 0 && g.crashes >= g.opts.MaxCrashes {
			g.rollback(c, fmt.Errorf("%d crashes within %v of the upgrade, the last: %v", g.crashes, g.opts.Window, m.Value))
		}
	case healthTick:
		if g.over || g.checking {
			return nil, nil
		}
		g.checking = true
		self := c.Self()
		view.Run(c, g.target, func(c *actor.Context, a actor.Actor) (any, error) {
			if view.Watcher(c) != self {
				return nil, errSuperseded
			}
			return nil, g.health(a)
		}).Then(func(c *actor.Context, _ any, err error) {
			g.checking = false
			switch {
			case err == nil || g.over || errors.Is(err, actor.ErrDead):
			case errors.Is(err, errSuperseded):
				g.superseded(c)
			default:
				g.rollback(c, err)
			}
		})
	case windowEnd:
		if !g.over {
			g.end(c)
		}
	case seam.CrashWatchEnded:
		// A later upgrade replaced the version this one made: its watch
		// is not this guard's to keep.
		if !g.over {
			g.superseded(c)
		}
	case actor.Down:
		if m.Ref == g.target && !g.over {
			g.over = true
			g.log.Warn("upgrade: the upgraded actor stopped within the window", "actor", g.target.String(),
				"version", g.to, "reason", m.Reason)
			_ = c.Stop(c.Self(), nil)
		}
	}
	return nil, nil
}

// end ends the watch: the upgrade is final.
func (g *guard) end(c *actor.Context) {
	g.over = true
	g.ticker.Cancel()
	self := c.Self()
	view.Run(c, g.target, func(c *actor.Context, _ actor.Actor) (any, error) {
		view.WatchCrashes(c, self, false)
		return nil, nil
	})
	_ = c.Stop(self, nil)
}

// superseded ends the watch of an upgrade that a later one replaced: the
// actor's version, and its watch, are the later upgrade's.
func (g *guard) superseded(c *actor.Context) {
	g.over = true
	g.ticker.Cancel()
	g.log.Info("upgrade: superseded by a later upgrade, watch ended", "actor", g.target.String(),
		"from", g.from, "to", g.to)
	_ = c.Stop(c.Self(), nil)
}

// rollback restores the old version: from the new one's state through
// Back if the actor is alive and Back succeeds, else by a restart from the
// old factory (while the actor is suspended after a crash, its
// supervisor's restart makes the old version).
func (g *guard) rollback(c *actor.Context, why error) {
	g.over = true
	g.ticker.Cancel()
	var backErr error
	dropped := 0
	self := c.Self()
	view.Swap(c, g.target, g.opts.Drain, func(c *actor.Context, a actor.Actor, _ actor.Factory, pending int) (actor.Actor, actor.Factory, error) {
		// The watch is this upgrade's token: a later upgrade (watched or
		// not) has taken it, and owns the version, the factory and the
		// supervisor's Start now.
		if view.Watcher(c) != self {
			return nil, nil, errSuperseded
		}
		if a != nil && !g.isNew(a) {
			return nil, nil, fmt.Errorf("%w: %T", errSuperseded, a)
		}
		view.WatchCrashes(c, self, false)
		dropped = pending
		if a != nil && g.back != nil {
			o, err := g.back(a)
			if err == nil {
				return o, g.prevF, nil
			}
			backErr = err
		}
		return nil, g.prevF, nil
	}).Then(func(c *actor.Context, _ any, err error) {
		if backErr != nil {
			why = fmt.Errorf("%w (%v: restarted from %s's factory instead)", why, backErr, g.from)
		}
		if dropped > 0 {
			why = fmt.Errorf("%w (%d continuations of %s dropped)", why, dropped, g.to)
		}
		if errors.Is(err, errSuperseded) {
			g.superseded(c)
			return
		}
		if err != nil {
			g.report(c, RollbackFailed, g.to, g.from, fmt.Errorf("%w; rollback: %w", why, err))
			_ = c.Stop(c.Self(), nil)
			return
		}
		if !g.sup {
			g.report(c, RolledBack, g.to, g.from, why)
			_ = c.Stop(c.Self(), nil)
			return
		}
		view.Run(c, g.parent, func(_ *actor.Context, a actor.Actor) (any, error) {
			u, ok := a.(childUpgrader)
			if !ok {
				return nil, nil
			}
			_, err := u.UpgradeChild(g.target, g.prevStart)
			return nil, err
		}).Then(func(c *actor.Context, _ any, err error) {
			if err != nil {
				g.log.Warn("upgrade: the supervisor did not take back the old version's Start",
					"actor", g.target.String(), "supervisor", g.parent.String(), "err", err)
			}
			g.report(c, RolledBack, g.to, g.from, why)
			_ = c.Stop(c.Self(), nil)
		})
	})
}

// report publishes an outcome and logs it.
func (g *guard) report(c *actor.Context, o Outcome, from, to string, why error) {
	rep := &Report{Outcome: o, Actor: g.target, From: from, To: to, Reason: why, Time: c.Now()}
	c.Report(rep)
	level := slog.LevelInfo
	switch o {
	case Refused, RolledBack:
		level = slog.LevelWarn
	case RollbackFailed:
		level = slog.LevelError
	}
	attrs := []any{"actor", g.target.String(), "from", from, "to", to}
	if why != nil {
		attrs = append(attrs, "reason", why.Error())
	}
	g.log.Log(context.Background(), level, "upgrade: "+o.String(), attrs...)
}
