package daemon

import (
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
)

// Ties (gateway.SpawnKind's Owner): an actor a gateway spawned for an
// owner is killed when the owner ends or the connection to its node is
// lost. A supervisor links to a child only once the start's answer reaches
// it; until then nothing else would stop a child whose answer was lost
// with its connection, or whose supervisor ended meanwhile. The gateway
// monitors each owner (a Down comes for either) and each tied actor (to
// forget it when it ends first). An application's root ties the children
// it starts on its own daemon the same way (tieLocal).

// maxTied bounds the actors tied at once on one daemon (and the owners
// watched, each with at least one): past it a spawn with an owner is
// refused. maxTiedPerOwner bounds one owner's.
const (
	maxTied         = 65536
	maxTiedPerOwner = 4096
)

// errTooManyTied refuses a tie past a bound.
var errTooManyTied = errors.New("too many actors tied to their owners on this daemon")

// errOwnerEnded refuses a spawn whose owner ended before it was made.
var errOwnerEnded = errors.New("its owner ended, or its node was lost, before it started")

// ties is the gateway's record of owners and the actors tied to them;
// used on the gateway's loop only. A ref may be both a tied actor and an
// owner (a child that starts children of its own): a monitor watches it
// for both (one Down), and it is demonitored only when it is neither.
type ties struct {
	owners  map[actor.Ref]*owned
	ownerOf map[actor.Ref]actor.Ref // tied actor -> owner
	max     int                     // maxTied if 0 (tests set it)
	// held are actors their owner let go of for a handover (hold): tied
	// to the holder (the gateway of the owner's daemon) instead, so that
	// they end with that daemon or its node's connection, and each killed
	// when its hold ends (the number of its timer, heldExpired) unless
	// adopted first.
	held    map[actor.Ref]heldTie
	heldSeq uint64
}

// heldTie is a held actor's hold: the number of its timer, and the claim
// its holder recorded for the next root (only an adoptTie or abandonTie
// carrying it is answered).
type heldTie struct {
	seq   uint64
	claim string
}

func (t *ties) bound() int {
	if t.max > 0 {
		return t.max
	}
	return maxTied
}

// owned is one owner's entry: the actors tied to it, and its spawns under
// way. A spawn keeps the entry it began with: if the owner's Down removed
// it meanwhile, a newer entry for the same owner is not the spawn's.
type owned struct {
	kids    map[actor.Ref]struct{}
	pending int
}

// expect records a spawn for owner under way, watching owner from now:
// an owner that ends, or whose node is lost, from here on is seen. The
// entry returned goes to tie or abandon.
func (t *ties) expect(c *actor.Context, owner actor.Ref) (*owned, error) {
	if t.owners == nil {
		t.owners, t.ownerOf = map[actor.Ref]*owned{}, map[actor.Ref]actor.Ref{}
	}
	o := t.owners[owner]
	if o == nil {
		if len(t.owners)+len(t.ownerOf) >= t.bound() {
			return nil, errTooManyTied
		}
		if err := c.Monitor(owner); err != nil {
			return nil, fmt.Errorf("watching its owner %v: %w", owner, err)
		}
		o = &owned{kids: map[actor.Ref]struct{}{}}
		t.owners[owner] = o
	}
	if len(o.kids)+o.pending >= maxTiedPerOwner {
		return nil, errTooManyTied
	}
	o.pending++
	return o, nil
}

// tie records kid, just spawned for owner under entry o; if the owner
// ended meanwhile (o is no longer its entry), kid is killed and the spawn
// fails.
func (t *ties) tie(c *actor.Context, owner actor.Ref, o *owned, kid actor.Ref) error {
	if t.owners[owner] != o { // its Down came while kid started
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

// abandon records that a spawn for owner under entry o failed.
func (t *ties) abandon(c *actor.Context, owner actor.Ref, o *owned) {
	if t.owners[owner] == o {
		o.pending--
		t.forgetIfIdle(c, owner, o)
	}
}

// forgetIfIdle stops watching an owner with nothing tied or under way
// (unless it is tied itself).
func (t *ties) forgetIfIdle(c *actor.Context, owner actor.Ref, o *owned) {
	if len(o.kids) == 0 && o.pending <= 0 {
		delete(t.owners, owner)
		if _, tied := t.ownerOf[owner]; !tied {
			_ = c.Demonitor(owner)
		}
	}
}

// down handles a Down: of an owner (its tied actors are killed; their own
// Downs follow, for those that own actors in turn), and of a tied actor
// (forgotten); one ref may be both.
func (t *ties) down(c *actor.Context, d actor.Down) {
	if o := t.owners[d.Ref]; o != nil {
		delete(t.owners, d.Ref)
		for kid := range o.kids {
			delete(t.ownerOf, kid)
			delete(t.held, kid)
			if _, owns := t.owners[kid]; !owns {
				_ = c.Demonitor(kid)
			}
			_ = c.Kill(kid)
		}
	}
	if owner, ok := t.ownerOf[d.Ref]; ok {
		delete(t.ownerOf, d.Ref)
		if o := t.owners[owner]; o != nil {
			delete(o.kids, d.Ref)
			t.forgetIfIdle(c, owner, o)
		}
	}
	delete(t.held, d.Ref)
}

// tieLocal asks the gateway to tie Kid, an actor of this daemon an
// application's root started here, to the root (Owner): a local message
// only (its type is not registered on the node).
type tieLocal struct {
	Owner, Kid actor.Ref
}

// tieNow ties an actor started without the gateway; if that cannot be
// done (a bound, the owner already gone), the actor is killed.
func (t *ties) tieNow(c *actor.Context, m tieLocal) error {
	o, err := t.expect(c, m.Owner)
	if err != nil {
		_ = c.Kill(m.Kid)
		return err
	}
	return t.tie(c, m.Owner, o, m.Kid)
}

// tiedCount is how many actors are tied and owners watched (tests).
func (t *ties) tiedCount() (kids, owners int) { return len(t.ownerOf), len(t.owners) }

// heldExpired ends the hold number Seq of Kid (a local message).
type heldExpired struct {
	Kid actor.Ref
	Seq uint64
}

// Errors of hold and adopt.
var (
	errNotTied = errors.New("not tied to that owner on this daemon")
	errNotHeld = errors.New("not held for a handover on this daemon (it ended, its hold ran out, or another adopted it)")
)

// hold moves kid's tie from owner to holder, for a handover: the owner's
// end no longer kills it, the holder's (or its node's loss) does; it is
// killed after d unless adopted before, by an adoptTie carrying claim.
func (t *ties) hold(c *actor.Context, owner, holder, kid actor.Ref, claim string, d time.Duration) error {
	o := t.owners[owner]
	if cur, ok := t.ownerOf[kid]; !ok || cur != owner || o == nil {
		return errNotTied
	}
	if _, held := t.held[kid]; held {
		return errNotTied
	}
	if err := t.move(c, owner, o, holder, kid); err != nil {
		return err // still tied to owner: it ends with it
	}
	if t.held == nil {
		t.held = map[actor.Ref]heldTie{}
	}
	t.heldSeq++
	t.held[kid] = heldTie{seq: t.heldSeq, claim: claim}
	c.After(d, heldExpired{Kid: kid, Seq: t.heldSeq})
	return nil
}

// move ties kid, tied to from (entry o), to to instead; if to cannot be
// watched (a bound, or it has gone), kid stays tied to from.
func (t *ties) move(c *actor.Context, from actor.Ref, o *owned, to, kid actor.Ref) error {
	n, err := t.expect(c, to)
	if err != nil {
		return err
	}
	n.pending--
	delete(o.kids, kid)
	n.kids[kid] = struct{}{}
	t.ownerOf[kid] = to
	t.forgetIfIdle(c, from, o)
	return nil
}

// isHeldBy reports whether kid is held for a handover by holder.
func (t *ties) isHeldBy(holder, kid actor.Ref) bool {
	_, held := t.held[kid]
	return held && t.ownerOf[kid] == holder
}

// adopt ties a held kid to its new owner, if claim is its hold's. One
// that cannot be (a bound) is killed: its new owner starts it afresh
// instead.
func (t *ties) adopt(c *actor.Context, owner, kid actor.Ref, claim string) error {
	if h, ok := t.held[kid]; !ok || h.claim != claim {
		return errNotHeld
	}
	holder := t.ownerOf[kid]
	o := t.owners[holder]
	if o == nil {
		return errNotHeld
	}
	if err := t.move(c, holder, o, owner, kid); err != nil {
		t.killHeld(c, kid)
		return err
	}
	delete(t.held, kid)
	return nil
}

// drop kills kid if holder still holds it (the handover failed), or if
// it is still tied to owner (not zero: its hold failed).
func (t *ties) drop(c *actor.Context, holder, owner, kid actor.Ref) {
	if cur, ok := t.ownerOf[kid]; ok && !owner.IsZero() && cur == owner {
		t.killHeld(c, kid)
		return
	}
	if !t.isHeldBy(holder, kid) {
		return
	}
	t.killHeld(c, kid)
}

// abandonAdoption kills kid for owner, a new root that will not adopt it (it
// starts the child afresh instead): if it is still held under claim, or
// if it is tied to owner already (an adoption whose answer owner did not
// get in time). Neither held nor tied to owner, it has gone from here
// (ended, or its hold did): nil all the same.
func (t *ties) abandonAdoption(c *actor.Context, owner, kid actor.Ref, claim string) error {
	if h, ok := t.held[kid]; ok {
		if h.claim != claim {
			return errNotHeld
		}
		t.killHeld(c, kid)
		return nil
	}
	if o, ok := t.ownerOf[kid]; ok && o == owner {
		t.killHeld(c, kid)
	}
	return nil
}

// expire kills a kid whose hold ran out, not adopted.
func (t *ties) expire(c *actor.Context, m heldExpired) {
	if h, ok := t.held[m.Kid]; !ok || h.seq != m.Seq {
		return
	}
	t.killHeld(c, m.Kid)
}

// killHeld kills a held (or tied) kid and forgets it.
func (t *ties) killHeld(c *actor.Context, kid actor.Ref) {
	delete(t.held, kid)
	holder := t.ownerOf[kid]
	delete(t.ownerOf, kid)
	if o := t.owners[holder]; o != nil {
		delete(o.kids, kid)
		t.forgetIfIdle(c, holder, o)
	}
	if _, owns := t.owners[kid]; !owns {
		_ = c.Demonitor(kid)
	}
	_ = c.Kill(kid)
}
