package actor

import (
	"context"
	"sync"
	"time"
	"weak"

	"github.com/actord/actord/internal/bugs"
	"github.com/actord/actord/internal/seam"
)

// This file is the seam between the actor runtime and a transport (package
// remote): how messages and requests from other nodes enter the loops.
// Each method checks that its target is an actor of this system and hands
// the request to the loop's side of the mailbox (mailbox_loop.go), the
// same code that serves local callers, with the network's origin: a
// network goroutine runs an idle loop's pass itself. Application code does
// not need it, so it is not exported: a transport gets a System's wire
// from internal/seam (seam.Wire) and declares the interface it needs.

// wire is what a transport uses to connect a System to other nodes. Its
// methods keep exported names so that the transport's own interface can
// name them. Holding a *System already gives full authority over its
// actors, so the wire grants nothing new; what protects actors from the
// network is the secret check in Resolve.
//
// DeliverSend, DeliverAsk and Settle are meant for the transport's network
// goroutines: when the target loop is idle (its goroutine parked), they run
// the loop's pass on the calling goroutine (loop.PostRun) rather than wake
// it, so a request read from the network is handled, and its reply written,
// without a thread hand-off. They may therefore run actor handlers before
// they return; call them from no lock a handler could need.
type wire struct {
	s      *System
	refs   *refTable // made with the system
	mu     sync.Mutex
	pinned []*remoteTarget // manual mode: kept for the system's lifetime (RemoteRef); under mu
}

func newRefTable() *refTable {
	return &refTable{interned: map[remoteKey]internedRef{}, bySeq: map[uint64]remoteKey{}, perPeer: map[nodePeer]int{}}
}

// refTable interns remote refs (wire.RemoteRef). It is apart from the
// wire so that the cleanups of interned refs reach it only weakly: a
// cleanup that held the wire (or a peer) would hold the system, whose
// actors hold the refs, which then could never be collected, nor the
// system after its shutdown.
type refTable struct {
	mu       sync.Mutex
	interned map[remoteKey]internedRef
	bySeq    map[uint64]remoteKey // the key of each interned ref, for its cleanup
	perPeer  map[nodePeer]int     // interned targets per peer not yet collected
	seq      uint64
}

type internedRef struct {
	t   weak.Pointer[remoteTarget]
	seq uint64
}

// init hands the wire to transports: seam.Wire(sys) is sys's wire.
func init() {
	seam.Wire = func(sys any) any { return &sys.(*System).wire }
}

// local returns the loop of r if r names an actor of this system, else nil.
func (w *wire) local(r Ref) *loopState {
	if r.l != nil && r.l.sys == w.s {
		return r.l
	}
	return nil
}

// DeliverSignal queues msg for a local actor on its loop's unbounded control
// queue: for runtime notifications that must not be lost to a full queue,
// such as a Down for a node that went away. It may overtake messages queued
// earlier.
func (w *wire) DeliverSignal(to Ref, msg any) error {
	l := w.local(to)
	if l == nil {
		return ErrInvalidRef
	}
	return l.control(origin{}, &envelope{kind: kSend, to: to, msg: msg})
}

// DeliverSend queues a one-way message from the network for a local actor. It
// fails with ErrQueueFull when the actor's loop is full and ErrInvalidRef for
// a ref that is not this system's.
func (w *wire) DeliverSend(to, from Ref, msg any) error {
	l := w.local(to)
	if l == nil {
		return ErrInvalidRef
	}
	return l.send(fromNet, to, from, msg)
}

// QueueSend is DeliverSend without waking the target's loop: a transport
// queues the messages of one network read with QueueSend and QueueAsk, then
// calls Kick for every loop it queued to (before it waits for room, too:
// a queue full of unkicked messages does not drain).
func (w *wire) QueueSend(to, from Ref, msg any) error {
	l := w.local(to)
	if l == nil {
		return ErrInvalidRef
	}
	return l.send(fromNetQuiet, to, from, msg)
}

// QueueAsk is DeliverAsk without waking the target's loop (see QueueSend).
func (w *wire) QueueAsk(to, from Ref, msg any, pidx, pgen uint32) error {
	l := w.local(to)
	if l == nil || !from.IsRemote() {
		return ErrInvalidRef
	}
	return l.ask(fromNetQuiet, to, from, msg, pidx, pgen)
}

// Kick makes the loop of the local actor to handle what QueueSend and
// QueueAsk queued: on the calling goroutine if the loop is idle (as
// DeliverSend), otherwise by waking it.
func (w *wire) Kick(to Ref) {
	if l := w.local(to); l != nil {
		l.loop.Kick()
	}
}

// DeliverAsk queues a request from the network for a local actor. Its reply
// goes back through from's peer with correlation (pidx, pgen); from must be a
// remote ref (of the asking actor, or of the remote node's goroutine proxy).
func (w *wire) DeliverAsk(to, from Ref, msg any, pidx, pgen uint32) error {
	l := w.local(to)
	if l == nil || !from.IsRemote() {
		return ErrInvalidRef
	}
	return l.ask(fromNet, to, from, msg, pidx, pgen)
}

// Settle hands the reply of a request made by a local actor (through
// seam.Peer.Ask) back to its promise on loop. A reply for a promise that already
// settled (timed out, failed) is ignored.
func (w *wire) Settle(loop uint16, pidx, pgen uint32, v any, err error) {
	if int(loop) >= len(w.s.loops) {
		return
	}
	_ = w.s.loops[loop].loop.PostControlRun(envelope{kind: kReply, pidx: pidx, pgen: pgen, msg: v, err: err})
}

// FailPeer fails, with err, every pending ask that local actors sent to p on
// a connection epoch up to epoch. Transports call it when a connection is lost.
func (w *wire) FailPeer(p nodePeer, epoch uint64, err error) {
	for _, ls := range w.s.loops {
		_ = ls.loop.PostControl(envelope{kind: kRun, msg: func(l *loopState) { l.failPeer(p, epoch, err) }})
	}
}

func (ls *loopState) failPeer(p nodePeer, epoch uint64, err error) {
	for i := range ls.promises.entries {
		e := &ls.promises.entries[i]
		if e.state == pPending && e.peer == p && e.epoch <= epoch {
			ls.settle(uint32(i), e.gen, nil, err)
		}
	}
}

// MonitorLocal registers the remote watcher for a Down when the local actor
// target stops; the Down is sent to the watcher through its peer. If target
// is dead by the time its loop gets to it, noproc runs there instead: the
// transport answers the request with a Down (ErrDead) of its own, which,
// unlike the Downs of a stop, it may refuse when its queue is full. The
// request keeps its place behind the messages queued for target before it
// and ahead of those queued after it (it takes the control queue only when
// target's queue is full), so a message sent after it by anyone who
// learned of the monitor is handled after it.
func (w *wire) MonitorLocal(target, watcher Ref, noproc func()) error {
	l := w.local(target)
	if l == nil {
		return ErrInvalidRef
	}
	return l.watchFrom(fromNet, target, watcher, noproc)
}

// DemonitorLocal cancels MonitorLocal, in the same order.
func (w *wire) DemonitorLocal(target, watcher Ref) error {
	l := w.local(target)
	if l == nil {
		return ErrInvalidRef
	}
	return l.demonitor(fromNet, target, watcher)
}

// LinkLocal links the local actor target to the remote actor from, on
// behalf of from's node (seam.Peer.Link); epoch gives the epoch of the
// transport's connection to from's node, read on target's loop when the
// link is made (see BreakLinks), or false: the request no longer counts
// (the transport ended the connection it came on, and from's node ends
// its half), so nothing is made and nothing answered. If target is dead
// by the time its loop gets to it, noproc runs there: the transport
// answers with the exit signal of a dead actor (ErrDead), as a local link
// to a dead actor of another loop gets. The request is ordered as
// MonitorLocal's.
func (w *wire) LinkLocal(target, from Ref, epoch func() (uint64, bool), noproc func()) error {
	l := w.local(target)
	if l == nil || !from.IsRemote() {
		return ErrInvalidRef
	}
	return l.linkFrom(fromNet, target, from, epoch, noproc)
}

// SpawnLinked is System.Spawn for the remote actor owner, whose node
// asked for the actor with a link (seam.Peer's spawn with an owner): the
// new actor's parent is owner, and its half of the link with owner is made
// in the same step as the actor, before its Start, with the epoch that
// epoch gives then (see LinkLocal). If epoch says the request no longer
// counts, no actor is made and the spawn fails with lost. spawned runs on
// the actor's loop in the same step, with the outcome, unless the spawn
// never got to the loop (ctx ended first, the system shut down): the
// transport answers there, right after Start, so that the answer goes
// ahead of the new actor's exit signal (not of what its Start sends). If
// spawned returns false (nobody will learn of the actor: the caller gave
// up, or its answer could not be sent), the actor's half goes without a
// signal.
func (w *wire) SpawnLinked(ctx context.Context, f Factory, owner Ref, epoch func() (uint64, bool), lost error, spawned func(Ref, error) bool) (Ref, error) {
	if owner.r == nil || epoch == nil || lost == nil {
		return Ref{}, ErrInvalidRef
	}
	return w.s.Spawn(ctx, f, func(o *spawnOpts) { o.parent, o.linkEpoch, o.linkLost, o.spawned = owner, epoch, lost, spawned })
}

// LinkSpawned links the local actor owner to the remote actor r that a
// spawn owner asked for has just made (r's half, on r's node, was made
// with r; its node answered before r could send anything, so r's exit
// signal comes after this), on owner's loop in order with what the
// network queued for owner before. If owner is alive, it is
// Context.Link(r) on owner's behalf: owner's half, and a link request to
// r's node (link queues it and returns its epoch), which confirms the
// spawn there. If owner is dead, dead runs
// instead (the transport sends r the exit signal of a dead actor). then
// runs last, on the loop, with the error that kept owner's half from
// being made (nil if it was made, or owner was dead).
func (w *wire) LinkSpawned(owner, r Ref, link func() (uint64, error), dead func(), then func(error)) error {
	l := w.local(owner)
	if l == nil || r.r == nil {
		return ErrInvalidRef
	}
	return l.ordered(fromNet, &envelope{kind: kRun, msg: func(t *loopState) {
		s := t.lookup(owner)
		if s == nil {
			dead()
			then(nil)
			return
		}
		epoch, err := link()
		if err != nil {
			dead() // r's half goes: nothing here would end it
			then(err)
			return
		}
		s.addRemoteLink(r, epoch)
		then(nil)
	}})
}

// UnlinkLocal removes the link between the local actor target and the
// remote actor from (seam.Peer.Unlink), ordered as MonitorLocal.
func (w *wire) UnlinkLocal(target, from Ref) error {
	l := w.local(target)
	if l == nil || !from.IsRemote() {
		return ErrInvalidRef
	}
	return l.unlinkFrom(fromNet, target, from)
}

// SignalLocal delivers the exit signal a remote actor sent with seam.Peer.Exit
// to the local actor to, with the semantics of Context.Exit (link false) or
// of the exit signal of a linked actor that stopped (link true: ignored
// unless the link still exists). A non-link signal whose reason matches
// ErrKilled is a Kill, which goes ahead of the messages queued for to. Any
// other signal is queued behind the messages queued before it for to (it
// takes the control queue only when to's queue is full). Either way to's
// loop is run or woken.
func (w *wire) SignalLocal(to, from Ref, reason error, link bool) error {
	l := w.local(to)
	if l == nil || !from.IsRemote() {
		return ErrInvalidRef
	}
	return l.exit(fromNet, to, from, reason, link)
}

// BreakLinks ends every link between a local actor and an actor reached
// through p that was made on a connection epoch up to epoch (seam.Peer.Link's,
// or LinkLocal's, compared without their mark: seam.LinkEpochBits), as when
// that connection to p's node is lost: each local actor gets the exit
// signal of its linked remote actor with reason (an Exited message if it
// traps exits; otherwise it stops with reason, unless reason is nil). Links
// made on a later connection, which the loops may see before this request,
// are kept.
func (w *wire) BreakLinks(p nodePeer, epoch uint64, reason error) {
	w.breakLinks(p, func(e uint64) bool { return e&linkEpochMask <= epoch }, reason)
}

// BreakOwnLinks ends, as BreakLinks does, the links up to epoch that local
// actors made (no mark: seam.LinkEpochBits), not those another node's
// actors made here.
func (w *wire) BreakOwnLinks(p nodePeer, epoch uint64, reason error) {
	w.breakLinks(p, func(e uint64) bool { return e>>seam.LinkEpochBits == 0 && e&linkEpochMask <= epoch }, reason)
}

// BreakMarkedLinks ends, as BreakLinks does, the links with actors reached
// through p whose epoch carries mark (not 0) above its low bits: the
// halves a transport marked with what made them (seam.LinkEpochBits).
func (w *wire) BreakMarkedLinks(p nodePeer, mark uint64, reason error) {
	w.breakLinks(p, func(e uint64) bool { return e>>seam.LinkEpochBits == mark }, reason)
}

const linkEpochMask = 1<<seam.LinkEpochBits - 1

func (w *wire) breakLinks(p nodePeer, hit func(epoch uint64) bool, reason error) {
	for _, ls := range w.s.loops {
		_ = ls.loop.PostControl(envelope{kind: kRun, msg: func(l *loopState) { l.breakLinks(p, hit, reason) }})
	}
}

func (ls *loopState) breakLinks(p nodePeer, match func(epoch uint64) bool, reason error) {
	var hit []Ref // pairs: the local actor, then its linked remote actor
	for i := uint32(0); i < ls.next; i++ {
		s := ls.slotAt(i)
		if s.state == slotFree {
			continue
		}
		for _, l := range s.links {
			if l.r != nil && l.r.peer == p && (match(s.linkEpochs[l]) || bugs.LinkEpoch) { // none recorded: 0
				hit = append(hit, Ref{l: ls, idx: i, gen: s.gen}, l)
			}
		}
	}
	for k := 0; k < len(hit); k += 2 {
		ls.signal(&envelope{kind: kSignal, to: hit[k], from: hit[k+1], err: reason, pidx: 1})
	}
}

// StopLocal stops a local actor on behalf of the network: on its loop's
// control queue, ahead of the messages queued for it.
func (w *wire) StopLocal(target Ref, reason error) error {
	l := w.local(target)
	if l == nil {
		return ErrInvalidRef
	}
	return l.halt(origin{}, target, reason)
}

// LifecycleLocal carries out, for another node, an acknowledged lifecycle
// request for the local actor target (seam.Peer.Lifecycle), on target's loop
// ahead of its queued messages, and calls done there with the outcome, as
// StopAsync and the others settle their promise. The request's timeout is
// counted from now. A zero target (an id that did not resolve) or one of
// another system is a dead actor: done is called at once, on the caller's
// goroutine.
func (w *wire) LifecycleLocal(target Ref, req seam.LifecycleRequest, done func(v any, err error)) error {
	a := ackFor(target, req)
	l := w.local(target)
	if l == nil {
		if a.deadOK {
			done(ErrDead, nil)
		} else {
			done(nil, ErrDead)
		}
		return nil
	}
	var deadline time.Time
	if a.timeout > 0 {
		deadline = l.loop.Now().Add(a.timeout)
	}
	return l.control(fromNet, &envelope{kind: kRun, msg: func(t *loopState) {
		done(a.run(t, target, deadline))
	}})
}
