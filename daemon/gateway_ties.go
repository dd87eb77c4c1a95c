package daemon

import (
	"errors"
	"fmt"

	"github.com/actord/actord/actor"
)

// Ties (gateway.SpawnKind's Owner): an actor a gateway spawned for an
// owner is killed when the owner ends or the connection to its node is
// lost. A supervisor links to a child only once the start's answer reaches
// it; until then nothing else would stop a child whose answer was lost
// with its connection, or whose supervisor ended meanwhile. The gateway
// monitors each owner (a Down comes for either) and each tied actor (to
// forget it when it ends first).

// maxTied bounds the actors tied at once on one daemon (and the owners
// watched, each with at least one): past it a spawn with an owner is
// refused.
const maxTied = 65536

// errTooManyTied refuses a tie past maxTied.
var errTooManyTied = errors.New("too many actors tied to their owners on this daemon")

// errOwnerEnded refuses a spawn whose owner ended before it was made.
var errOwnerEnded = errors.New("its owner ended, or its node was lost, before it started")

// ties is the gateway's record of owners and the actors tied to them;
// used on the gateway's loop only.
type ties struct {
	owners  map[actor.Ref]*owned
	ownerOf map[actor.Ref]actor.Ref // tied actor -> owner
	max     int                     // maxTied if 0 (tests set it)
}

func (t *ties) bound() int {
	if t.max > 0 {
		return t.max
	}
	return maxTied
}

// owned is one owner's: the actors tied to it, and its spawns under way.
type owned struct {
	kids    map[actor.Ref]struct{}
	pending int
}

// expect records a spawn for owner under way, watching owner from now:
// an owner that ends, or whose node is lost, from here on is seen.
func (t *ties) expect(c *actor.Context, owner actor.Ref) error {
	if t.owners == nil {
		t.owners, t.ownerOf = map[actor.Ref]*owned{}, map[actor.Ref]actor.Ref{}
	}
	o := t.owners[owner]
	if o == nil {
		if len(t.owners)+len(t.ownerOf) >= t.bound() {
			return errTooManyTied
		}
		if err := c.Monitor(owner); err != nil {
			return fmt.Errorf("watching its owner %v: %w", owner, err)
		}
		o = &owned{kids: map[actor.Ref]struct{}{}}
		t.owners[owner] = o
	}
	o.pending++
	return nil
}

// tie records kid, just spawned for owner; if owner ended meanwhile, kid
// is killed and the spawn fails.
func (t *ties) tie(c *actor.Context, owner, kid actor.Ref) error {
	o := t.owners[owner]
	if o == nil { // its Down came while kid started
		_ = c.Kill(kid)
		return errOwnerEnded
	}
	o.pending--
	if len(t.ownerOf) >= t.bound() {
		_ = c.Kill(kid)
		t.forgetIfIdle(c, owner, o)
		return errTooManyTied
	}
	if err := c.Monitor(kid); err != nil {
		_ = c.Kill(kid)
		t.forgetIfIdle(c, owner, o)
		return err
	}
	o.kids[kid] = struct{}{}
	t.ownerOf[kid] = owner
	return nil
}

// abandon records that a spawn for owner failed.
func (t *ties) abandon(c *actor.Context, owner actor.Ref) {
	if o := t.owners[owner]; o != nil {
		o.pending--
		t.forgetIfIdle(c, owner, o)
	}
}

// forgetIfIdle stops watching an owner with nothing tied or under way.
func (t *ties) forgetIfIdle(c *actor.Context, owner actor.Ref, o *owned) {
	if len(o.kids) == 0 && o.pending <= 0 {
		_ = c.Demonitor(owner)
		delete(t.owners, owner)
	}
}

// down handles a Down: of an owner (its tied actors are killed), or of a
// tied actor (forgotten).
func (t *ties) down(c *actor.Context, d actor.Down) {
	if o := t.owners[d.Ref]; o != nil {
		for kid := range o.kids {
			_ = c.Demonitor(kid)
			_ = c.Kill(kid)
			delete(t.ownerOf, kid)
		}
		delete(t.owners, d.Ref)
		return
	}
	if owner, ok := t.ownerOf[d.Ref]; ok {
		delete(t.ownerOf, d.Ref)
		if o := t.owners[owner]; o != nil {
			delete(o.kids, d.Ref)
			t.forgetIfIdle(c, owner, o)
		}
	}
}

// tiedCount is how many actors are tied and owners watched (tests).
func (t *ties) tiedCount() (kids, owners int) { return len(t.ownerOf), len(t.owners) }
