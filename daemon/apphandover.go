package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
	"github.com/actord/actord/supervisor"
)

// Handing an application's root over to another daemon without restarting
// its children (docs/supervision.md, "Applications"):
//
//  1. the driver holds the application (no restart here; renewed until
//     the release, the lease bounding the handover) and asks the runner
//     to end the root for a handover (HandOver);
//  2. the root lets go of its children (supervisor.Detach); the gateway of
//     each child's daemon unties it from the root and holds it for
//     handoverHold (holdTie), tied to this daemon's gateway: the root's
//     end no longer kills it, this daemon's end (or its node's loss)
//     still does;
//  3. the root stops; the driver proposes the release (appreg OpRelease)
//     with the children's refs (handoverChild, bounded by
//     appreg.MaxHandoverSize), clean if the root has ended;
//  4. the new holder's root is started with those refs (Spec.Adopt): each
//     child still held is tied to it (adoptTie, with the hold's claim the
//     release recorded) and linked, no start run; one that has gone is
//     started afresh. One whose adoption fails, or that the root will not
//     adopt, is killed first (abandonTie), so that it never runs beside
//     its fresh copy. A held child that no root adopts within
//     handoverHold is killed by its gateway, and at once (dropTie) if the
//     handover fails before the driver proposed the release with its
//     record (driver.Unreleaser), or if its record does not fit in it;
//  5. once the holds are known, the runner watches the children held
//     (handOffWatch, up to handoverHold), whether or not anyone waits for
//     the handover's outcome: those still held are dropped if the
//     registry assigns the application afresh (the new holder lost), as
//     they are if it comes back to this daemon (appRunner.Start).
//     handOverRoots waits (bounded) for the watch to see them all
//     adopted, so that this daemon may stop; not adopted in time, the
//     handover is reported failed and the watch goes on.

// handoverHold bounds how long a child let go of by its root for a
// handover runs without one: the new root must adopt it within that time
// (its start waits for the release to commit, a lease renewal, and the
// gateways: about a second or two). A var: tests shorten it.
var handoverHold = time.Minute

// handoverStep bounds each step of a root's handover on its daemon: the
// Detach, and the holds asked of the children's gateways.
const handoverStep = 10 * time.Second

// holdTie asks the gateway of a child's daemon to untie Kid from its root
// Owner and hold it for a handover (handoverHold), tied to Holder, the
// gateway of Owner's daemon, instead: the child ends with that daemon, or
// with the connection to its node, as it did with its root. Claim is what
// a new root must show to adopt it: a random secret the holder records
// only in its release, which only registry members read. Only a registry
// member's sender, on Owner's and Holder's daemon, is answered.
type holdTie struct {
	Kid, Owner, Holder actor.Ref
	Claim              string
}

// dropTie asks the gateway of a held child's daemon to kill Kid if Holder
// still holds it (the handover failed), or, Owner set, if it is still
// tied to Owner (its hold failed, or its answer was lost: Kid must not
// outlive the handover unheld); only a registry member's sender, on
// Holder's (and Owner's) daemon, is answered.
type dropTie struct {
	Kid, Holder, Owner actor.Ref
}

// heldQuery asks the gateway of a held child's daemon whether Holder
// still holds Kid (a bool); only a sender on Holder's daemon is answered.
type heldQuery struct {
	Kid, Holder actor.Ref
}

// adoptTie asks the gateway of a held child's daemon to tie Kid to Owner,
// the new root, if Claim is its hold's (holdTie); only a registry
// member's sender, on Owner's daemon, is answered.
type adoptTie struct {
	Kid, Owner actor.Ref
	Claim      string
}

// abandonTie asks the gateway of a held child's daemon to kill Kid, which
// Owner, the new root, will not adopt (it starts the child afresh): if it
// is still held under Claim, or already tied to Owner (an adoptTie whose
// answer came too late). Answered like an adoptTie; nil also when Kid is
// no longer there.
type abandonTie struct {
	Kid, Owner actor.Ref
	Claim      string
}

// handoverLocal carries a holdTie or adoptTie to this daemon's own
// gateway: a local message only (its type is not registered on the node),
// so a remote sender cannot pass for a local one.
type handoverLocal struct{ Msg any }

// errNotOwnersNode refuses a holdTie or adoptTie from elsewhere than the
// owner's daemon, or from a daemon that is not a registry member.
var errNotOwnersNode = errors.New("not sent from the owner's daemon, a registry member")

// fromOwnersNode reports whether c's sender, of another daemon, is on
// the node of every ref of owners.
func (g *Gateway) fromOwnersNode(c *actor.Context, owners ...actor.Ref) bool {
	s := c.Sender()
	if !s.IsRemote() {
		return false
	}
	sn, _, _, ok := g.d.node.ExportRef(s)
	if !ok {
		return false
	}
	for _, owner := range owners {
		if !owner.IsRemote() {
			return false
		}
		on, _, _, ok := g.d.node.ExportRef(owner)
		if !ok || sn != on {
			return false
		}
	}
	return true
}

// handoverFrom reports whether a holdTie, adoptTie, dropTie or heldQuery
// naming refs comes from where it must: from this daemon (local) about
// its own actors, or from the daemon of refs, a registry member (only
// those run roots, hold their children, and read the releases' claims; a
// client could otherwise take a held child, or pile up holds' timers).
func (g *Gateway) handoverFrom(c *actor.Context, local bool, refs ...actor.Ref) bool {
	if local {
		for _, r := range refs {
			if r.IsRemote() {
				return false
			}
		}
		return true
	}
	if node, ok := g.fromMember(c); !ok || !g.d.apps.isMember(node) {
		return false
	}
	return g.fromOwnersNode(c, refs...)
}

// handoverCall answers a holdTie or adoptTie (from another daemon, or in
// a handoverLocal from this one), on the gateway's loop.
func (g *Gateway) handoverCall(c *actor.Context, msg any) (any, error) {
	local := false
	if l, ok := msg.(handoverLocal); ok {
		msg, local = l.Msg, true
	}
	switch m := msg.(type) {
	case holdTie:
		if m.Holder.IsZero() || !g.handoverFrom(c, local, m.Owner, m.Holder) {
			return nil, errNotOwnersNode
		}
		return nil, g.ties.hold(c, m.Owner, m.Holder, m.Kid, m.Claim, handoverHold)
	case adoptTie:
		if !g.handoverFrom(c, local, m.Owner) {
			return nil, errNotOwnersNode
		}
		return nil, g.ties.adopt(c, m.Owner, m.Kid, m.Claim)
	case abandonTie:
		if !g.handoverFrom(c, local, m.Owner) {
			return nil, errNotOwnersNode
		}
		return nil, g.ties.abandonAdoption(c, m.Owner, m.Kid, m.Claim)
	case dropTie:
		refs := []actor.Ref{m.Holder}
		if !m.Owner.IsZero() {
			refs = append(refs, m.Owner)
		}
		if !g.handoverFrom(c, local, refs...) {
			return nil, errNotOwnersNode
		}
		g.ties.drop(c, m.Holder, m.Owner, m.Kid)
	case heldQuery:
		if !g.handoverFrom(c, local, m.Holder) {
			return nil, errNotOwnersNode
		}
		return g.ties.isHeldBy(m.Holder, m.Kid), nil
	case heldExpired:
		if !c.Sender().IsZero() { // this gateway's own timer only
			return nil, nil
		}
		g.ties.expire(c, m)
	}
	return nil, nil
}

// askGateway asks the gateway of the daemon named node a holdTie,
// adoptTie or dropTie.
func (d *Daemon) askGateway(ctx context.Context, node string, msg any) error {
	_, err := d.askGatewayValue(ctx, node, msg)
	return err
}

// askGatewayValue is askGateway, with the answer.
func (d *Daemon) askGatewayValue(ctx context.Context, node string, msg any) (any, error) {
	gw, ok := d.gatewayOf(node)
	if !ok {
		return nil, fmt.Errorf("no gateway known for %s", node)
	}
	if node == d.cfg.Name {
		msg = handoverLocal{Msg: msg}
	}
	return d.sys.Ask(ctx, gw, msg)
}

// handoverChild is a child a root let go of, as its release records it
// for the next root: its ID and kind, and its ref as capability parts
// (remote.Node.ExportRef).
type handoverChild struct {
	ID    string       `json:"id"`
	Kind  string       `json:"kind"`
	Node  string       `json:"node"`
	Addr  string       `json:"addr"`
	Wire  actor.WireID `json:"wire"`
	Claim string       `json:"claim,omitempty"` // its hold's (holdTie)
}

// claimLen is the length of a hold's claim (unguessable): random, so that
// only who read the release can adopt the child (holdTie).
const claimLen = 32

// unguessable returns claimLen hex digits of crypto/rand: a name nobody can
// guess (a hold's claim, a move's name).
func unguessable() string {
	var b [claimLen / 2]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// maxHandoverChildren bounds the children a handover decodes.
const maxHandoverChildren = 256

// encodeHandover encodes the records, as many as fit in
// appreg.MaxHandoverSize (in order), and returns the ones encoded.
func encodeHandover(recs []handoverChild) ([]byte, []handoverChild) {
	recs = recs[:min(len(recs), maxHandoverChildren)]
	for n := len(recs); n > 0; n-- {
		b, err := json.Marshal(recs[:n])
		if err == nil && len(b) <= appreg.MaxHandoverSize {
			return b, recs[:n]
		}
	}
	return nil, nil
}

// decodeHandover decodes what a release recorded; it came through the
// registry's log, written by members, and is checked all the same.
func decodeHandover(b []byte) ([]handoverChild, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > appreg.MaxHandoverSize {
		return nil, fmt.Errorf("handover of %d bytes (max %d)", len(b), appreg.MaxHandoverSize)
	}
	var recs []handoverChild
	if err := json.Unmarshal(b, &recs); err != nil {
		return nil, err
	}
	if len(recs) > maxHandoverChildren {
		return nil, fmt.Errorf("%d children in a handover (max %d)", len(recs), maxHandoverChildren)
	}
	return recs, nil
}

// handoverRecords makes the records of the children a root let go of, as
// many as a release can carry.
func (d *Daemon) handoverRecords(kids []supervisor.Detached, slots map[string]*childSlot) []handoverChild {
	var recs []handoverChild
	for _, k := range kids {
		s := slots[k.ID]
		if s == nil {
			continue
		}
		node, addr, wire, ok := d.node.ExportRef(k.Ref)
		if !ok {
			continue
		}
		recs = append(recs, handoverChild{ID: k.ID, Kind: s.current(), Node: node, Addr: addr, Wire: wire})
	}
	return fitHandover(recs)
}

// fitHandover returns the records, in order, that a release can carry
// once each has its hold's claim (set later, by holdChildren): a child
// held whose record did not fit would be in no release, and run beside
// the copy the new root starts.
func fitHandover(recs []handoverChild) []handoverChild {
	probe := make([]handoverChild, len(recs))
	for i, r := range recs {
		r.Claim = strings.Repeat("0", claimLen)
		probe[i] = r
	}
	_, probe = encodeHandover(probe)
	return recs[:len(probe)]
}

// gatewayOf returns the gateway of the daemon named node (this one's
// included).
func (d *Daemon) gatewayOf(node string) (actor.Ref, bool) {
	if node == d.cfg.Name {
		return d.gw.ref, true
	}
	d.gw.mu.Lock()
	defer d.gw.mu.Unlock()
	p, ok := d.gw.peers[node]
	return p.ref, ok && !p.ref.IsZero()
}

// holdChildren asks the gateway of each child's daemon to hold it, at
// once for all, and returns the records of those held: the others end
// with the root, as without a handover. Children on this daemon are not
// held: they would end with it (it is handing its roots over to stop),
// as restarts of the new root that adopted them, and too many of those
// make a root give up and restart every child; ended with the old root,
// they are started afresh by the new one, no restart counted.
func (d *Daemon) holdChildren(root actor.Ref, recs []handoverChild, refs map[string]actor.Ref) []handoverChild {
	ctx, cancel := context.WithTimeout(context.Background(), handoverStep)
	defer cancel()
	held := make([]bool, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		rec := &recs[i]
		if rec.Node == d.cfg.Name {
			continue
		}
		rec.Claim = unguessable()
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := refs[rec.ID]
			err := d.askGateway(ctx, rec.Node, holdTie{Kid: kid, Owner: root, Holder: d.gw.ref, Claim: rec.Claim})
			if handoverHoldAnswerHook != nil {
				err = handoverHoldAnswerHook(rec.ID, err)
			}
			held[i] = err == nil
			if err != nil {
				d.log.Warn("applications: a child was not held for its root's handover; it is killed, and the new root starts it afresh", "child", rec.ID, "node", rec.Node, "err", err)
				d.killUnheld(kid, rec.Node, root)
			}
		}()
	}
	wg.Wait()
	var out []handoverChild
	for i, rec := range recs {
		if held[i] {
			out = append(out, rec)
		}
	}
	if handoverHeldHook != nil {
		handoverHeldHook(out)
	}
	return out
}

// killUnheld kills kid, a child its root let go of (Detach: unlinked)
// whose hold failed or whose answer was lost, before the release: it is
// not in the release, so the new root starts it afresh, and it must not
// run beside that copy, neither held (a hold applied after all) nor
// until the gateway sees its root's end. Asked of its gateway (kill it if
// held by this daemon or tied to root), and, if that is not confirmed,
// killed through its ref, both within handoverStep; if neither is
// confirmed (its node unreachable), it ends when its gateway sees the
// root's end or, held, at its hold's end.
func (d *Daemon) killUnheld(kid actor.Ref, node string, root actor.Ref) {
	ctx, cancel := context.WithTimeout(context.Background(), handoverStep)
	defer cancel()
	if err := d.askGateway(ctx, node, dropTie{Kid: kid, Holder: d.gw.ref, Owner: root}); err == nil {
		return
	}
	if err := d.sys.Kill(ctx, kid); err != nil {
		d.log.Warn("applications: a child not held for its root's handover was not confirmed killed", "node", node, "err", err)
	}
}

// handoverHoldAnswerHook, if set (tests), may change the answer to a
// child's hold (as if it were lost).
var handoverHoldAnswerHook func(id string, err error) error

// handoverHeldHook, if set (tests), is called with the children held for
// a handover, before the root stops.
var handoverHeldHook func([]handoverChild)

// handOff is an application whose root is being, or was, handed over
// from here: kept until the application starts here again, or the driver
// stops it (the handover failed: its held children are dropped).
type handOff struct {
	root    actor.Ref
	gen     uint64 // the generation handed over
	cluster *appCluster
	aborted bool          // the driver stopped it
	held    []heldKid     // the children held, once their gateways answered
	holding bool          // the holds are under way
	watch   *handOffWatch // following held, once known (nil: none held)
	// released: the driver has the records of held, to propose them in
	// the release; unset (Unreleased) if it failed before proposing them.
	released bool
	// dropped, set by Unreleased, lets the driver propose its release
	// without the records once held are dropped.
	dropped func(*actor.Context)
}

// heldKid is a child held for a handover by this daemon's gateway.
type heldKid struct {
	node string
	ref  actor.Ref
}

// setHandedOff records the watch of the children held for app's handover
// from here (nil: none), for handOverRoots to wait for their adoption.
func (a *apps) setHandedOff(app string, w *handOffWatch) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if w == nil {
		delete(a.handedOff, app)
		return
	}
	if a.handedOff == nil {
		a.handedOff = map[string]*handOffWatch{}
	}
	a.handedOff[app] = w
}

func (a *apps) handedOffOf(app string) *handOffWatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handedOff[app]
}

// errNotAdopted means children held for a root's handover were not all
// adopted by the new root: the handover failed.
var errNotAdopted = errors.New("children held for the handover were not all adopted by the new root")

// errReassigned means the registry assigned the application afresh past
// the generation a release gave to the new holder (the holder lost): no
// root adopts the children held for it any more.
var errReassigned = errors.New("the registry assigned the application afresh (its new holder was lost)")

// errWatchEnded means the watch of held children ended before they were
// adopted: the application started here again, the handover was aborted
// (both drop them), or the daemon stopped (which ends them).
var errWatchEnded = errors.New("the watch of the held children ended")

// Bounds of a handOffWatch: it asks every watchPollMin at first, backing
// off to watchPollMax (a new root adopts within a second or two; a lost
// one is seen after the registry's failover wait), each ask within
// watchAsk.
const (
	watchPollMin = 20 * time.Millisecond
	watchPollMax = 500 * time.Millisecond
	watchAsk     = 2 * time.Second
)

// handOffWatches are a daemon's handOffWatch goroutines: ctx ends when
// the daemon stops, which waits for them.
type handOffWatches struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	stopped bool // no goroutine starts once stop waits
}

// stop ends the watches (and the drops they started) and waits for them.
func (ws *handOffWatches) stop() {
	ws.mu.Lock()
	ws.stopped = true
	ws.mu.Unlock()
	if ws.cancel != nil {
		ws.cancel()
	}
	ws.wg.Wait()
}

// run runs f on a goroutine that stop waits for; once stop has begun, it
// runs f here instead (stop does not wait for it, its caller does).
func (ws *handOffWatches) run(f func()) {
	ws.mu.Lock()
	if ws.stopped {
		ws.mu.Unlock()
		f()
		return
	}
	ws.wg.Add(1)
	ws.mu.Unlock()
	go func() {
		defer ws.wg.Done()
		f()
	}()
}

// handOffWatch follows the children held here for one handover of app's
// root, of generation gen, from the moment their holds are known, whether
// or not anyone waits for the handover's outcome (a drain whose context
// ended before the release was confirmed does not): until none is held
// any more (the new root adopted them, or they ended), or no root will
// adopt them (reassigned: the registry moved app past the release's
// generation gen+1, or assigned gen+1 instead of the release, or stopped
// or removed app; the children still held are dropped, rather than run
// beside the next root's fresh copies until their hold ends), or
// handoverHold passes (their gateways end the holds by then).
type handOffWatch struct {
	app    string
	gen    uint64
	cancel context.CancelFunc
	done   chan struct{} // closed once the watch has ended, err set
	err    error         // nil: none held any more
	still  atomic.Int32  // how many are still held, as last seen
}

// end stops the watch without dropping anything (its caller does).
func (w *handOffWatch) end() {
	if w != nil {
		w.cancel()
	}
}

// watchHandOff starts the watch of held, the children held here for the
// handover of app's root of generation gen.
func (d *Daemon) watchHandOff(app string, gen uint64, held []heldKid) *handOffWatch {
	ctx, cancel := context.WithTimeout(d.watches.ctx, handoverHold+handoverStep)
	w := &handOffWatch{app: app, gen: gen, cancel: cancel, done: make(chan struct{})}
	w.still.Store(int32(len(held)))
	d.watches.run(func() {
		defer close(w.done)
		defer cancel()
		w.err = d.runHandOffWatch(ctx, w, held)
	})
	return w
}

// runHandOffWatch is the watch's loop: see handOffWatch. A failed ask (of
// a gateway, or of the registry) is not an outcome: it is asked again at
// the next round.
func (d *Daemon) runHandOffWatch(ctx context.Context, w *handOffWatch, held []heldKid) error {
	pause := watchPollMin
	for {
		var still []heldKid
		for _, h := range held {
			actx, cancel := context.WithTimeout(ctx, watchAsk)
			v, err := d.askGatewayValue(actx, h.node, heldQuery{Kid: h.ref, Holder: d.gw.ref})
			if watchHeldHook != nil {
				v, err = watchHeldHook(h)
			}
			cancel()
			if s, _ := v.(bool); s || err != nil {
				still = append(still, h)
			}
		}
		held = still
		w.still.Store(int32(len(held)))
		if len(held) == 0 {
			return nil // adopted (or ended): that wins over a reassignment seen since
		}
		// Asked after the holds: a hold ended by this daemon's start of
		// the application again (appRunner.Start) shows above.
		sctx, cancel := context.WithTimeout(ctx, watchAsk)
		st, err := d.apps.status(sctx)
		if watchStatusHook != nil {
			st, err = watchStatusHook()
		}
		cancel()
		if err == nil && reassigned(st, w.app, w.gen+1) {
			d.dropHeld(held, nil)
			return errReassigned
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%d still held at the end of their hold", len(held))
			}
			return errWatchEnded
		case <-time.After(pause): // polling the gateways and the registry, which have no watch
		}
		pause = min(2*pause, watchPollMax)
	}
}

// watchHeldHook and watchStatusHook, if set (tests), stand for a
// watch's answers from the gateways and the registry.
var (
	watchHeldHook   func(heldKid) (any, error)
	watchStatusHook func() (driver.Status, error)
)

// awaitAdoption waits, within ctx, until w has seen none of its children
// held any more (nil w: none was held), and returns the watch's outcome:
// the daemon's end would kill them. The watch goes on if ctx ends first.
func awaitAdoption(ctx context.Context, w *handOffWatch) error {
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
		if w.err != nil {
			return fmt.Errorf("%w: %w", errNotAdopted, w.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %d still held: %w", errNotAdopted, w.still.Load(), ctx.Err())
	}
}

// reassigned reports whether no root will adopt the children held for
// the release of app at generation gen: the registry has moved app past
// gen (only gen's holder is granted its release, whatever moved it on:
// an assignment, or a release by that holder, which then had adopted the
// children or would not any more), or to gen by an assignment rather
// than the release, or stopped or removed it. An application the status
// does not list is not known yet (a replica behind): not reassigned.
// Dropping is safe whenever adoption won the race: a drop kills only a
// child still held here.
func reassigned(st driver.Status, app string, gen uint64) bool {
	a, ok := st.App(app)
	// gen itself by an assignment: the release did not commit, and the
	// registry failed the application over instead.
	return ok && (a.Desired != appreg.Running || a.Gen > gen || (a.Gen == gen && a.HandoverGen != a.Gen))
}

// dropHeld asks the gateways of held children to kill them, if this
// daemon still holds them (not adopted): the handover failed. done, if
// set, is called (on a goroutine) once every drop was answered or given
// up on (handoverStep).
func (d *Daemon) dropHeld(held []heldKid, done func()) {
	if len(held) == 0 {
		if done != nil {
			done()
		}
		return
	}
	// Joined when the daemon stops, as the watches are.
	d.watches.run(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handoverStep)
		defer cancel()
		var wg sync.WaitGroup
		for _, h := range held {
			wg.Go(func() {
				if dropHeldHook != nil {
					dropHeldHook(h)
				}
				if err := d.askGateway(ctx, h.node, dropTie{Kid: h.ref, Holder: d.gw.ref}); err != nil {
					d.log.Warn("applications: a held child was not dropped after a failed handover; it ends with its hold", "node", h.node, "err", err)
				}
			})
		}
		wg.Wait()
		if done != nil {
			done()
		}
	})
}

// dropHeldHook, if set (tests), is called before a held child's drop.
var dropHeldHook func(heldKid)

// handoverHoldingHook, if set (tests), is called with the records of the
// children to hold for a handover (and their refs), before the holds.
var handoverHoldingHook func([]handoverChild, map[string]actor.Ref)

// handoverLost records, for the handover of app's root under way, the
// children the root let go of that are not held for the next root (their
// hold failed, or their record did not fit): they end with the root, and
// the next root starts them afresh. handOverRoots reports them.
func (d *Daemon) handoverLost(app string, kids []supervisor.Detached, held []handoverChild) {
	var lost []string
	for _, k := range kids {
		if !slices.ContainsFunc(held, func(h handoverChild) bool { return h.ID == k.ID }) {
			lost = append(lost, k.ID)
		}
	}
	d.lostMu.Lock()
	defer d.lostMu.Unlock()
	if d.lost == nil {
		d.lost = map[string][]string{}
	}
	d.lost[app] = lost
}

// takeHandoverLost returns (and forgets) what handoverLost recorded for app.
func (d *Daemon) takeHandoverLost(app string) []string {
	d.lostMu.Lock()
	defer d.lostMu.Unlock()
	l := d.lost[app]
	delete(d.lost, app)
	return l
}

// HandOver implements driver.Handoverer: the root lets go of its
// children, their daemons hold them, and the root stops; done gets the
// records of the children held.
func (r *appRunner) HandOver(c *actor.Context, app string, done func(*actor.Context, []byte, bool)) {
	inst := r.insts[app]
	delete(r.insts, app)
	if inst == nil || inst.ref.IsZero() {
		done(c, nil, true) // no root runs (between restarts)
		return
	}
	root := inst.ref
	r.d.apps.dropLive(app, root)
	if r.handing == nil {
		r.handing = map[string]*handOff{}
	}
	h := &handOff{root: root, gen: inst.gen, cluster: inst.cluster}
	r.handing[app] = h
	c.AskTimeout(root, supervisor.Detach{}, handoverStep).Then(func(c *actor.Context, v any, err error) {
		if h.aborted {
			return
		}
		kids, _ := v.([]supervisor.Detached)
		if err != nil {
			r.log.Warn("applications: the root did not let go of its children; they end with it", "app", app, "err", err)
		}
		recs := r.d.handoverRecords(kids, inst.slots)
		refs := map[string]actor.Ref{}
		for _, k := range kids {
			refs[k.ID] = k.Ref
		}
		p, settle := c.ExternalPromise()
		h.holding = true
		go func() {
			if handoverHoldingHook != nil {
				handoverHoldingHook(recs, refs)
			}
			settle(r.d.holdChildren(root, recs, refs), nil)
		}()
		p.Then(func(c *actor.Context, v any, _ error) {
			h.holding = false
			held, _ := v.([]handoverChild)
			enc, recorded := encodeHandover(held)
			if len(recorded) < len(held) {
				// Not expected (fitHandover reserves the claims): a held
				// child the release does not name is dropped before it.
				var drop []heldKid
				for _, rec := range held[len(recorded):] {
					drop = append(drop, heldKid{node: rec.Node, ref: refs[rec.ID]})
				}
				r.log.Warn("applications: children held for a handover do not fit in its release; they are dropped", "app", app, "children", len(drop))
				r.d.dropHeld(drop, nil)
				held = recorded
			}
			for _, rec := range held {
				h.held = append(h.held, heldKid{node: rec.Node, ref: refs[rec.ID]})
			}
			if h.aborted {
				r.dropThen(c, h.held, h.dropped)
				return
			}
			if len(h.held) > 0 {
				// Watched from now on, whoever waits for the outcome.
				h.watch = r.d.watchHandOff(app, h.gen, h.held)
			}
			r.d.apps.setHandedOff(app, h.watch)
			r.d.handoverLost(app, kids, held)
			inst.cluster.close()
			_ = c.Unlink(root)
			t := r.stopAfter
			if t <= 0 {
				t = -1
			}
			c.StopAsync(root, actor.ErrShutdown, t).Then(func(c *actor.Context, _ any, err error) {
				if h.aborted {
					return
				}
				// Ended only if the stop was acknowledged: a stop
				// that turned into a kill has not happened yet.
				h.released = true
				done(c, enc, err == nil)
			})
		})
	})
}

// Unreleased implements driver.Unreleaser: the driver will not propose
// the release with the records of the children held for app's handover
// (it failed first), so no root adopts them: abortHandOver, next, drops
// them, and calls dropped once the drops are answered (or given up on),
// so that the release without them, which lets the next holder start
// them afresh, comes after.
func (r *appRunner) Unreleased(c *actor.Context, app string, dropped func(*actor.Context)) {
	h := r.handing[app]
	if h == nil {
		dropped(c)
		return
	}
	h.released = false
	h.dropped = dropped
}

// dropThen drops held (dropHeld), then calls then, if set, on the loop
// once the drops have been answered or given up on (handoverStep).
func (r *appRunner) dropThen(c *actor.Context, held []heldKid, then func(*actor.Context)) {
	if then == nil {
		r.d.dropHeld(held, nil)
		return
	}
	if len(held) == 0 {
		then(c)
		return
	}
	p, settle := c.ExternalPromise()
	r.d.dropHeld(held, func() { settle(nil, nil) })
	p.Then(func(c *actor.Context, _ any, _ error) { then(c) })
}

// abortHandOver ends what is left of app's handover from here, if any
// (its lease ended, its generation moved on, or the driver restarts): the
// root, if it still runs, is killed at once, and what the handover has
// not done yet is not done. The children held are dropped (killed unless
// adopted) at once if the driver does not have their records yet, or
// failed before proposing them (Unreleased): it then proposes a release
// without them, or none. Once it proposed them, the release may have committed although
// the driver has not seen it yet (with OffLoop, a tick's expire comes
// before the reconcile of the write that applied it), and the new root
// may be about to adopt them: the watch of the held children goes on,
// and drops them if the registry assigns the application afresh, as for
// a handover nobody waits for, or if it starts here again.
func (r *appRunner) abortHandOver(c *actor.Context, app string) {
	h := r.handing[app]
	if h == nil {
		return
	}
	h.aborted = true
	h.cluster.close()
	_ = c.Unlink(h.root)
	_ = c.Kill(h.root)
	if h.watch != nil && h.released {
		// Kept in handing: a start here again drops what it does not
		// adopt at once (Start).
		r.log.Warn("applications: a root's handover failed, or was cut short, after its release was proposed; the root is killed, its held children are dropped if the registry assigns it afresh", "app", app)
		return
	}
	delete(r.handing, app)
	r.d.apps.setHandedOff(app, nil)
	h.watch.end()
	if !h.holding {
		r.dropThen(c, h.held, h.dropped) // else once the holds are answered
	}
	r.log.Warn("applications: a root's handover failed, or was cut short; the root is killed and its held children dropped", "app", app)
}

// adoption is what a new root's start got from a release: the children
// to adopt (Spec.Adopt), their holds' claims, and the children held that
// it will not adopt (their slot is gone, or makes another kind now).
type adoption struct {
	adopt  map[string]supervisor.Detached
	claims map[actor.Ref]string
	unused []abandonTie // Owner is set when they are abandoned
}

// adoptions turns what a release recorded into the children the new
// root adopts: those whose slot makes the same kind. Spec.Adopt takes
// remote children only; every application child is one (supervisorSpec),
// wherever it is placed, the root's daemon included: checked all the
// same.
func (r *appRunner) adoptions(app string, b []byte, sp supervisor.Spec, slots map[string]*childSlot) adoption {
	var out adoption
	recs, err := decodeHandover(b)
	if err != nil {
		r.log.Warn("applications: unusable handover; children start afresh", "app", app, "err", err)
		return out
	}
	out.adopt, out.claims = map[string]supervisor.Detached{}, map[actor.Ref]string{}
	for _, rec := range recs {
		ref, err := r.d.node.ImportRef(rec.Node, rec.Addr, rec.Wire)
		if err != nil {
			// Not addressable from here: it ends at its hold's end.
			r.log.Warn("applications: a child held for the handover cannot be addressed; it ends at its hold's end", "app", app, "child", rec.ID, "err", err)
			continue
		}
		s := slots[rec.ID]
		remote := slices.ContainsFunc(sp.Children, func(c supervisor.ChildSpec) bool { return c.ID == rec.ID && c.Remote.Kind != "" })
		if s == nil || s.current() != rec.Kind || !remote {
			out.unused = append(out.unused, abandonTie{Kid: ref, Claim: rec.Claim})
			continue
		}
		out.adopt[rec.ID] = supervisor.Detached{ID: rec.ID, Ref: ref, Node: rec.Addr}
		out.claims[ref] = rec.Claim
	}
	return out
}

// abandonAll has the children in a release that the new root will not
// adopt killed (abandonTie, owner this daemon's gateway), within
// handoverStep, before the root starts: it would start them afresh.
func (d *Daemon) abandonAll(unused []abandonTie) {
	ctx, cancel := context.WithTimeout(context.Background(), handoverStep)
	defer cancel()
	var wg sync.WaitGroup
	for _, m := range unused {
		wg.Go(func() {
			m.Owner = d.gw.ref
			d.abandonKid(ctx, m)
		})
	}
	wg.Wait()
}

// abandonKid asks the gateway of a held child's daemon to kill it (m); if
// that is not confirmed within ctx, it is killed through its ref. If
// neither is confirmed (its node unreachable from here), a child still
// held ends at its hold's end (handoverHold) or with its holder's daemon,
// and until then may run beside the copy the new root starts.
func (d *Daemon) abandonKid(ctx context.Context, m abandonTie) {
	node := d.cfg.Name
	if m.Kid.IsRemote() {
		n, _, _, ok := d.node.ExportRef(m.Kid)
		if !ok {
			return
		}
		node = n
	}
	err := d.askGateway(ctx, node, m)
	if err == nil {
		return
	}
	if kerr := d.sys.Kill(ctx, m.Kid); kerr != nil {
		d.log.Warn("applications: a held child the new root does not adopt was not confirmed killed; it ends at its hold's end", "node", node, "err", err, "kill", kerr)
	}
}

// AdoptAsync implements supervisor.Adopter: the gateway of the child's
// daemon ties it to the new root, if it still holds it under the claim
// the release recorded. If that fails, however (refused, or no answer in
// time: the tie may have been made all the same), the child is abandoned
// (abandonKid, within timeout) before done: the root starts it afresh
// only once the held instance is gone, or not confirmed gone.
func (a *appCluster) AdoptAsync(owner, child actor.Ref, timeout time.Duration, done func(error)) {
	go func() {
		node := a.d.cfg.Name
		if child.IsRemote() {
			n, _, _, ok := a.d.node.ExportRef(child)
			if !ok {
				done(errNotHeld)
				return
			}
			node = n
		}
		claim := a.claims[child]
		if adoptHook != nil {
			adoptHook()
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := a.d.askGateway(ctx, node, adoptTie{Kid: child, Owner: owner, Claim: claim})
		if adoptAnswerHook != nil {
			err = adoptAnswerHook(err)
		}
		if err != nil {
			actx, acancel := context.WithTimeout(context.Background(), timeout)
			defer acancel()
			a.d.abandonKid(actx, abandonTie{Kid: child, Owner: owner, Claim: claim})
		}
		done(err)
	}()
}

// adoptHook, if set (tests), runs before each adoption (AdoptAsync).
var adoptHook func()

// adoptAnswerHook, if set (tests), may change the answer to an adoption
// (as if it were lost once the tie was made).
var adoptAnswerHook func(error) error

// RootHandover is the outcome of one root's handover (handOverRoots).
type RootHandover struct {
	App string
	To  string // the daemon it was given to
	Gen uint64 // the generation released; the new holder's is Gen+1
	// Err is nil once the registry moved it and the new root adopted
	// the children held for it (within handoverStep).
	Err error
	// Lost are the children the root let go of that were not held for
	// the new root (their hold failed): they end with the root and the
	// new root starts them afresh.
	Lost []string
}

// errNoSuccessor means no other live registry member can take a root.
var errNoSuccessor = errors.New("no other live registry member to hand the root to")

// capAppRelease is the capability (cluster.Config.Caps) of a daemon whose
// registry replica applies releases (appreg.OpRelease). A replica of an
// older binary rejects them as unknown: its state would part from the
// others' (the application assigned to the releaser there, to the next
// holder elsewhere), and, leader one day, it could let two nodes run
// the application. So a release is proposed only while every registry
// member is live and announces it.
const capAppRelease = "app-release"

// errHandoverUnsupported refuses a root handover while some registry
// member is not known to apply releases: the root fails over as before.
var errHandoverUnsupported = errors.New("root handover is not supported by every registry member (one is down, or runs an older binary)")

// releaseUnsupported returns the registry members not known, from the
// membership's gossip, to apply releases: not live, or not announcing
// capAppRelease.
func (d *Daemon) releaseUnsupported() []string {
	caps := map[string]bool{}
	for _, m := range d.agent.Members() {
		caps[m.Name] = m.Has(capAppRelease)
	}
	var out []string
	for _, n := range d.apps.cfg.Members {
		if !caps[n] {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// handOverRoots hands every application root that runs on this daemon to
// another live registry member (its first live preferred one, else the
// least loaded), without restarting the children: see the start of this
// file. It returns once the registry has moved each and its new root has
// adopted the children held for it (or ctx ends, or handoverStep passes).
// A root not handed over (an error) before the release keeps the usual
// failover when this daemon stops; one released whose children were not
// adopted in time is reported failed too (they may end, and restart
// afresh under the new root).
func (d *Daemon) handOverRoots(ctx context.Context) ([]RootHandover, error) {
	st, err := d.apps.status(ctx)
	if err != nil {
		return nil, err
	}
	ref := d.apps.driverRef()
	var live []string
	for _, m := range d.agent.Members() {
		if !m.Self && d.apps.isMember(m.Name) {
			live = append(live, m.Name)
		}
	}
	slices.Sort(live)
	load := map[string]int{}
	for _, a := range st.Apps {
		if a.Desired == appreg.Running && a.Node != "" {
			load[a.Node]++
		}
	}
	var out []RootHandover
	var unclaims []func()
	defer func() {
		for _, unclaim := range unclaims {
			unclaim()
		}
	}()
	if miss := d.releaseUnsupported(); len(miss) > 0 {
		err := fmt.Errorf("%w: %s", errHandoverUnsupported, strings.Join(miss, ", "))
		for _, app := range st.Running {
			out = append(out, RootHandover{App: app, Err: err})
		}
		if len(out) == 0 {
			return out, nil
		}
		return out, err
	}
	// release has the driver release h.App, claimed, to h.To.
	release := func(h *RootHandover) {
		if v, err := d.sys.Ask(ctx, ref, driver.Release{App: h.App, To: h.To}); err != nil {
			h.Err = err
		} else {
			h.Gen, _ = v.(uint64)
			h.Lost = d.takeHandoverLost(h.App)
			load[h.To]++
		}
	}
	// First the applications no move or upgrade keeps busy, at once;
	// then the busy ones, each waiting for its claim a share of the time
	// left: one whose move or upgrade runs long must not keep the others
	// from being handed over.
	var busy []int
	for _, app := range st.Running {
		out = append(out, RootHandover{App: app, To: successor(st, app, live, load)})
		h := &out[len(out)-1]
		if h.To == "" {
			h.Err = errNoSuccessor
			continue
		}
		unclaim, ok := d.apps.tryClaim(app)
		if !ok {
			busy = append(busy, len(out)-1)
			continue
		}
		unclaims = append(unclaims, unclaim)
		release(h)
	}
	for i := range out {
		if !slices.Contains(busy, i) {
			d.settleHandover(ctx, &out[i])
		}
	}
	for k, i := range busy {
		h := &out[i]
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok {
			cctx, cancel = context.WithTimeout(ctx, time.Until(dl)/time.Duration(len(busy)-k+1))
		}
		unclaim, err := d.apps.claimApp(cctx, h.App)
		cancel()
		if err != nil {
			h.Err = err
			continue
		}
		unclaims = append(unclaims, unclaim)
		release(h)
		d.settleHandover(ctx, h)
	}
	var errs []error
	for _, h := range out {
		if h.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.App, h.Err))
		}
	}
	return out, errors.Join(errs...)
}

// settleHandover waits, within ctx, until the release of h (asked, if
// h.Err is nil) has committed and the new root has adopted the children
// held for it (within handoverStep), and sets h.Err otherwise.
func (d *Daemon) settleHandover(ctx context.Context, h *RootHandover) {
	for h.Err == nil {
		st, err := d.apps.status(ctx)
		if err == nil && moved(st, h.App, h.Gen) {
			break
		}
		select {
		case <-ctx.Done():
			h.Err = fmt.Errorf("the release of %q did not commit: %w", h.App, ctx.Err())
		case <-time.After(20 * time.Millisecond): // polling the registry, which has no watch
		}
	}
	if h.Err != nil {
		return
	}
	// Moved: wait (bounded) until the new root has adopted the children
	// held here; this daemon's end would kill them. Not adopted in time,
	// the handover has failed; the runner's watch of the children still
	// held goes on (up to their hold), as it does for a release whose
	// outcome nobody waits for, and drops them if the registry assigns
	// the application afresh.
	var w *handOffWatch
	if x := d.apps.handedOffOf(h.App); x != nil && x.gen == h.Gen {
		w = x
	}
	actx, cancel := context.WithTimeout(ctx, handoverStep)
	err := awaitAdoption(actx, w)
	cancel()
	if err != nil {
		h.Err = err
		d.log.Warn("applications: children held for a handover not all adopted", "app", h.App, "err", err)
	}
}

// errHandoverBusy means a root was not handed over because a move or an
// upgrade of its application ran here for as long as the handover could
// wait.
var errHandoverBusy = errors.New("a move or upgrade of the application is under way")

// claimApp waits, within ctx, until no move or upgrade of app runs from
// here, and keeps them from starting (apps.claimed) until the function
// it returns ends the claim: a root that lets go of its children for a
// handover must not be asked to take a moved child's new instance
// meanwhile (it would refuse it).
func (a *apps) claimApp(ctx context.Context, app string) (func(), error) {
	for {
		if unclaim, ok := a.tryClaim(app); ok {
			return unclaim, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", errHandoverBusy, ctx.Err())
		case <-time.After(20 * time.Millisecond): // a move or upgrade has no event to wait on
		}
	}
}

// tryClaim claims app for one move, upgrade or handover at a time
// (apps.claimed): false if one runs. The function it returns ends this
// claim only: a later one of the same application (after an end) is
// another's. claimApp is tryClaim with a wait.
func (a *apps) tryClaim(app string) (func(), bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, busy := a.claimed[app]; busy {
		return nil, false
	}
	a.claims++
	token := a.claims
	a.claimed[app] = token
	return func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.claimed[app] == token {
			delete(a.claimed, app)
		}
	}, true
}

// successor picks the daemon to hand app's root to.
func successor(st driver.Status, app string, live []string, load map[string]int) string {
	rec, _ := st.App(app)
	for _, p := range rec.Prefer {
		if slices.Contains(live, p) {
			return p
		}
	}
	best := ""
	for _, n := range live {
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	return best
}

// moved reports whether the registry has moved app past generation gen.
func moved(st driver.Status, app string, gen uint64) bool {
	a, ok := st.App(app)
	return !ok || a.Gen > gen // not listed: removed meanwhile
}
