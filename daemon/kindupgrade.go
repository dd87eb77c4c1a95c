package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/upgrade"
)

// Upgrades between kinds: Go cannot load code, so the new version of an
// application's child is another kind compiled into the daemon, and a
// KindUpgrade says how a running actor of the one becomes the other.

// KindUpgrade moves a running actor of kind From to kind To, in place,
// through an upgrade.Migration (Config.Upgrades). Make one with Upgrade;
// the zero value is refused by Config.Validate.
type KindUpgrade struct {
	// From and To are the kinds (both in Config.Kinds).
	From, To string

	bad error // what Upgrade found wrong with the migration
	// run moves ref one way: forward, or back through the migration's
	// Back; fresh makes the target kind from the child's arguments.
	run func(ctx context.Context, sys *actor.System, ref actor.Ref, back bool, fresh actor.Factory, log *slog.Logger) error
	// which says whether an instance is of the Old type, of the New one.
	which func(a actor.Actor) (isOld, isNew bool)
}

// Upgrade registers m as the upgrade of a running actor of kind from
// (whose instances are Olds) to kind to (News). An application's rolling
// upgrade runs it with upgrade.Apply on the daemon where the child runs:
// m.Forward moves the state, and m.Back is required, for a failure of a
// later child rolls the earlier ones back through it. The actor's factory
// after the move is the target kind made from the child's arguments (not
// m.Factory, which may be nil here). A watched upgrade (m.Health) is not
// supported: the application's upgrade is final once it has answered.
// Forward and Back run on the actor's loop and must not block.
func Upgrade[Old, New actor.Actor](from, to string, m upgrade.Migration[Old, New]) KindUpgrade {
	u := KindUpgrade{From: from, To: to}
	switch {
	case m.Forward == nil:
		u.bad = errors.New("its migration has no Forward")
	case m.Back == nil:
		u.bad = errors.New("its migration has no Back: a failed rolling upgrade could not move the child back")
	case m.Health != nil:
		u.bad = errors.New("its migration has a Health check: an application's upgrade is not watched")
	}
	if m.From == "" {
		m.From = from
	}
	if m.To == "" {
		m.To = to
	}
	u.which = func(a actor.Actor) (bool, bool) {
		_, o := a.(Old)
		_, n := a.(New)
		return o && !isNilActor(a), n && !isNilActor(a)
	}
	u.run = func(ctx context.Context, sys *actor.System, ref actor.Ref, back bool, fresh actor.Factory, log *slog.Logger) error {
		o := upgrade.Options{Logger: log}
		if !back {
			f, err := typedFactory[New](fresh, to)
			if err != nil {
				return err
			}
			fw := m
			fw.Factory = f
			return upgrade.Apply(ctx, sys, ref, fw, o)
		}
		f, err := typedFactory[Old](fresh, from)
		if err != nil {
			return err
		}
		rev := upgrade.Migration[New, Old]{From: m.To, To: m.From, Forward: m.Back, Factory: f}
		return upgrade.Apply(ctx, sys, ref, rev, o)
	}
	return u
}

// Errors of a kind that cannot be moved to, found before the move.
var (
	// errKindType: a kind's factory does not make the migration's type.
	errKindType = errors.New("the kind does not make the migration's type")
	// errKindPanic: a kind's factory panicked.
	errKindPanic = errors.New("the kind's factory panicked")
)

// typedFactory makes fresh a func() T, checking once that it makes Ts.
// The check must build one (a factory's result type is known only from
// a result); a panic of fresh is recovered and refuses the move, for it
// runs on a goroutine of the daemon's, where it would end the process.
func typedFactory[T actor.Actor](fresh actor.Factory, kind string) (func() T, error) {
	probe, err := probeFactory(fresh)
	if err != nil {
		return nil, fmt.Errorf("%w: kind %q: %v", errKindPanic, kind, err)
	}
	if p, ok := probe.(T); !ok || isNilActor(p) {
		return nil, fmt.Errorf("%w: kind %q makes %T, the migration wants %v", errKindType, kind, probe, reflect.TypeFor[T]())
	}
	return func() T {
		v, _ := fresh().(T)
		return v
	}, nil
}

// probeFactory calls f once, a panic turned into an error.
func probeFactory(f actor.Factory) (a actor.Actor, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("panic: %v", p)
		}
	}()
	return f(), nil
}

func isNilActor(a actor.Actor) bool {
	if a == nil {
		return true
	}
	v := reflect.ValueOf(a)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// upgradeKey names a registered upgrade.
type upgradeKey struct{ from, to string }

// checkUpgrades checks Config.Upgrades against the kinds.
func checkUpgrades(us []KindUpgrade, kinds Kinds) error {
	seen := map[upgradeKey]bool{}
	for i, u := range us {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("upgrades[%d] (%q -> %q): %s", i, truncate(u.From, 64), truncate(u.To, 64), fmt.Sprintf(format, args...))
		}
		switch {
		case u.run == nil:
			return bad("not made with daemon.Upgrade")
		case u.bad != nil:
			return bad("%v", u.bad)
		case u.From == u.To:
			return bad("from and to are the same kind")
		case kinds[u.From] == nil:
			return bad("%q is not a kind of this daemon", truncate(u.From, 64))
		case kinds[u.To] == nil:
			return bad("%q is not a kind of this daemon", truncate(u.To, 64))
		case seen[upgradeKey{u.From, u.To}]:
			return bad("registered twice")
		}
		seen[upgradeKey{u.From, u.To}] = true
	}
	return nil
}

// upgradeTable indexes Config.Upgrades (checked).
func upgradeTable(us []KindUpgrade) map[upgradeKey]KindUpgrade {
	t := make(map[upgradeKey]KindUpgrade, len(us))
	for _, u := range us {
		t[upgradeKey{u.From, u.To}] = u
	}
	return t
}
