package actor

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// This file is the seam between the actor runtime and a transport (package
// remote): how a Ref crosses the network and how messages from other nodes
// enter the loops. Application code does not need it.

// Peer is a transport's handle on another node. The runtime calls it to send
// to actors on that node; the transport implements it (package remote).
// Every method must be safe from any goroutine and must not block: a full
// outbound queue is an error (ErrQueueFull), not a wait.
type Peer interface {
	// Send delivers msg one way to the remote actor to; from is the local
	// sender (zero from a plain goroutine).
	Send(to, from Ref, msg any) error
	// Ask sends a request whose reply the transport must hand back with
	// Wire.Settle(from's loop, pidx, pgen, ...). It returns the connection
	// epoch the request went out on, so that Wire.FailPeer can fail exactly
	// the asks that may have been lost.
	Ask(to, from Ref, msg any, pidx, pgen uint32) (epoch uint64, err error)
	// Reply answers a request that came from the remote actor to (or from
	// the remote node's goroutine-ask proxy) with correlation (pidx, pgen).
	Reply(to Ref, pidx, pgen uint32, v any, err error)
	// AskWait is a blocking ask from a plain goroutine.
	AskWait(ctx context.Context, to Ref, msg any) (any, error)
	// Monitor asks the remote node to send Down to watcher when target
	// stops; Demonitor cancels it. If the node is or goes down, the
	// transport delivers Down with its node-down error itself.
	Monitor(target, watcher Ref) error
	Demonitor(target, watcher Ref) error
	// Stop asks the remote node to stop target.
	Stop(target Ref, reason error) error
	// Link asks the remote node to link its actor target to the local
	// actor from (the other half of the link is kept by from's loop); if
	// target is dead, the transport delivers from an exit signal with
	// ErrDead, as Wire.LinkLocal does. It returns the connection epoch the
	// request went out on (see BreakLinks). Unlink removes that half.
	Link(target, from Ref) (epoch uint64, err error)
	Unlink(target, from Ref) error
	// Exit sends the remote actor to an exit signal from the local actor
	// from, to be handed to Wire.SignalLocal on to's node with the same
	// reason and link flag.
	Exit(to, from Ref, reason error, link bool) error
	// Node names the peer, for logs and Ref.String.
	Node() string
}

// WireID is how a Ref travels on the network: the actor's loop, slot and
// generation, and a 128-bit secret derived from them with a key known only to
// the actor's node. A node delivers a message only if the secret matches, so
// a forged or guessed id looks exactly like a dead actor.
type WireID struct {
	Loop   uint16
	Slot   uint32
	Gen    uint32
	Secret [16]byte
}

// GoroutineLoop is the Loop of a WireID that names no actor but a plain
// goroutine waiting in a blocking ask; its (pidx, pgen) correlation is the
// transport's own.
const GoroutineLoop = 0xFFFF

// remoteTarget is the remote half of a Ref.
type remoteTarget struct {
	peer Peer
	id   WireID
}

// Wire is the interface a transport uses to connect a System to other nodes.
// Holding a *System already gives full authority over its actors, so Wire
// grants nothing new; what protects actors from the network is the secret
// check in Resolve.
//
// DeliverSend, DeliverAsk and Settle are meant for the transport's network
// goroutines: when the target loop is idle (its goroutine parked), they run
// the loop's pass on the calling goroutine (loop.PostRun) rather than wake
// it, so a request read from the network is handled, and its reply written,
// without a thread hand-off. They may therefore run actor handlers before
// they return; call them from no lock a handler could need.
type Wire struct {
	s        *System
	mu       sync.Mutex
	interned map[remoteKey]weak.Pointer[remoteTarget]
	perPeer  map[Peer]int // interned targets per peer not yet collected
}

// Wire returns the system's transport interface.
func (s *System) Wire() *Wire { return &s.wire }

type secretKey struct {
	once  sync.Once
	block cipher.Block
}

func (s *System) secrets() cipher.Block {
	s.key.once.Do(func() {
		var k [16]byte
		if _, err := rand.Read(k[:]); err != nil {
			panic(fmt.Sprintf("actor: no randomness for ref secrets: %v", err))
		}
		b, err := aes.NewCipher(k[:])
		if err != nil {
			panic(err)
		}
		s.key.block = b
	})
	return s.key.block
}

// secret is AES-128 under the system's random key of (loop, slot, gen): a
// pseudorandom permutation, so unpredictable without the key, and cheap to
// recompute on every incoming message instead of storing it per actor.
func (s *System) secret(loop uint16, slot, gen uint32) (out [16]byte) {
	// The block cipher is an interface, so buffers passed to it escape:
	// take them from a pool rather than allocating two per message.
	b := secretBufs.Get().(*[32]byte)
	in, enc := b[:16], b[16:]
	clear(in)
	binary.BigEndian.PutUint16(in[0:], loop)
	binary.BigEndian.PutUint32(in[2:], slot)
	binary.BigEndian.PutUint32(in[6:], gen)
	s.secrets().Encrypt(enc, in)
	copy(out[:], enc)
	secretBufs.Put(b)
	return out
}

var secretBufs = sync.Pool{New: func() any { return new([32]byte) }}

// LocalID returns the wire identity of a ref of this system's own actors
// (with its secret). It reports false for the zero Ref, remote refs and refs
// of other systems.
func (w *Wire) LocalID(r Ref) (WireID, bool) {
	if r.l == nil || r.l.sys != w.s {
		return WireID{}, false
	}
	id := WireID{Loop: uint16(r.l.id), Slot: r.idx, Gen: r.gen}
	id.Secret = w.s.secret(id.Loop, id.Slot, id.Gen)
	return id, true
}

// Resolve turns the wire identity of one of this system's actors back into a
// Ref, if its secret matches. It does not check that the actor is alive:
// delivery does. When the secret does not match it returns false and a dead
// Ref: a forged id and a dead actor must look the same to the sender.
func (w *Wire) Resolve(id WireID) (Ref, bool) {
	dead := Ref{l: w.s.loops[0], idx: ^uint32(0)}
	if int(id.Loop) >= len(w.s.loops) {
		return dead, false
	}
	want := w.s.secret(id.Loop, id.Slot, id.Gen)
	if subtle.ConstantTimeCompare(want[:], id.Secret[:]) != 1 {
		return dead, false
	}
	return Ref{l: w.s.loops[id.Loop], idx: id.Slot, gen: id.Gen}, true
}

type remoteKey struct {
	peer Peer
	id   WireID
}

// RemoteRef makes a Ref for an actor on another node. The Ref carries no
// authority of its own: the other node checks id.Secret. Refs of the same
// remote actor through the same Peer are interned, so they compare equal
// with == (and work as map keys) however many times they are decoded; the
// table holds them weakly and forgets refs nobody holds.
func (w *Wire) RemoteRef(p Peer, id WireID) Ref {
	k := remoteKey{p, id}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.interned == nil {
		w.interned = map[remoteKey]weak.Pointer[remoteTarget]{}
	}
	if wp, ok := w.interned[k]; ok {
		if t := wp.Value(); t != nil {
			return Ref{r: t, idx: id.Slot, gen: id.Gen}
		}
	}
	t := &remoteTarget{peer: p, id: id}
	w.interned[k] = weak.Make(t)
	if w.perPeer == nil {
		w.perPeer = map[Peer]int{}
	}
	w.perPeer[p]++
	runtime.AddCleanup(t, func(k remoteKey) {
		w.mu.Lock()
		if wp, ok := w.interned[k]; ok && wp.Value() == nil {
			delete(w.interned, k)
		}
		if w.perPeer[k.peer]--; w.perPeer[k.peer] <= 0 {
			delete(w.perPeer, k.peer)
		}
		w.mu.Unlock()
	}, k)
	return Ref{r: t, idx: id.Slot, gen: id.Gen}
}

// RemoteRefs reports how many distinct remote actors reached through p
// have refs that may still be held: refs dropped by everyone stop counting
// once the garbage collector has reclaimed them. A transport uses it to
// tell a peer that nothing references (and that it may forget) from one
// that user code can still send to.
func (w *Wire) RemoteRefs(p Peer) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.perPeer[p]
}

// DeliverSignal queues msg for a local actor on its loop's unbounded control
// queue: for runtime notifications that must not be lost to a full queue,
// such as a Down for a node that went away. It may overtake messages queued
// earlier.
func (w *Wire) DeliverSignal(to Ref, msg any) error {
	if to.l == nil || to.l.sys != w.s {
		return ErrInvalidRef
	}
	return postErr(to.l.loop.PostControl(envelope{kind: kSend, to: to, msg: msg}))
}

// Remote returns the peer and wire identity of a remote ref, or false for a
// local or zero Ref.
func (w *Wire) Remote(r Ref) (Peer, WireID, bool) {
	if r.r == nil {
		return nil, WireID{}, false
	}
	return r.r.peer, r.r.id, true
}

// IsRemote reports whether r names an actor on another node.
func (r Ref) IsRemote() bool { return r.r != nil }

// DeliverSend queues a one-way message from the network for a local actor. It
// fails with ErrQueueFull when the actor's loop is full and ErrInvalidRef for
// a ref that is not this system's.
func (w *Wire) DeliverSend(to, from Ref, msg any) error {
	if to.l == nil || to.l.sys != w.s {
		return ErrInvalidRef
	}
	return postErr(to.l.loop.PostRun(envelope{kind: kSend, to: to, from: from, msg: msg}))
}

// QueueSend is DeliverSend without waking the target's loop: a transport
// queues the messages of one network read with QueueSend and QueueAsk, then
// calls Kick for every loop it queued to (before it waits for room, too:
// a queue full of unkicked messages does not drain).
func (w *Wire) QueueSend(to, from Ref, msg any) error {
	if to.l == nil || to.l.sys != w.s {
		return ErrInvalidRef
	}
	return postErr(to.l.loop.PostQuiet(envelope{kind: kSend, to: to, from: from, msg: msg}))
}

// QueueAsk is DeliverAsk without waking the target's loop (see QueueSend).
func (w *Wire) QueueAsk(to, from Ref, msg any, pidx, pgen uint32) error {
	if to.l == nil || to.l.sys != w.s || from.r == nil {
		return ErrInvalidRef
	}
	return postErr(to.l.loop.PostQuiet(envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen}))
}

// Kick makes the loop of the local actor to handle what QueueSend and
// QueueAsk queued: on the calling goroutine if the loop is idle (as
// DeliverSend), otherwise by waking it.
func (w *Wire) Kick(to Ref) {
	if to.l != nil && to.l.sys == w.s {
		to.l.loop.Kick()
	}
}

// DeliverAsk queues a request from the network for a local actor. Its reply
// goes back through from's Peer with correlation (pidx, pgen); from must be a
// remote ref (of the asking actor, or of the remote node's goroutine proxy).
func (w *Wire) DeliverAsk(to, from Ref, msg any, pidx, pgen uint32) error {
	if to.l == nil || to.l.sys != w.s || from.r == nil {
		return ErrInvalidRef
	}
	return postErr(to.l.loop.PostRun(envelope{kind: kAsk, to: to, from: from, msg: msg, pidx: pidx, pgen: pgen}))
}

// Settle hands the reply of a request made by a local actor (through
// Peer.Ask) back to its promise on loop. A reply for a promise that already
// settled (timed out, failed) is ignored.
func (w *Wire) Settle(loop uint16, pidx, pgen uint32, v any, err error) {
	if int(loop) >= len(w.s.loops) {
		return
	}
	_ = w.s.loops[loop].loop.PostControlRun(envelope{kind: kReply, pidx: pidx, pgen: pgen, msg: v, err: err})
}

// FailPeer fails, with err, every pending ask that local actors sent to p on
// a connection epoch up to epoch. Transports call it when a connection is lost.
func (w *Wire) FailPeer(p Peer, epoch uint64, err error) {
	for _, ls := range w.s.loops {
		_ = ls.loop.PostControl(envelope{kind: kRun, msg: func(l *loopState) { l.failPeer(p, epoch, err) }})
	}
}

func (ls *loopState) failPeer(p Peer, epoch uint64, err error) {
	for i := range ls.promises.entries {
		e := &ls.promises.entries[i]
		if e.state == pPending && e.peer == p && e.epoch <= epoch {
			ls.settle(uint32(i), e.gen, nil, err)
		}
	}
}

// MonitorLocal registers the remote watcher for a Down when the local actor
// target stops; the Down is sent to the watcher through its Peer. If target
// is dead by the time its loop gets to it, noproc runs there instead: the
// transport answers the request with a Down (ErrDead) of its own, which,
// unlike the Downs of a stop, it may refuse when its queue is full.
func (w *Wire) MonitorLocal(target, watcher Ref, noproc func()) error {
	if target.l == nil || target.l.sys != w.s {
		return ErrInvalidRef
	}
	return postOrdered(target.l, envelope{kind: kRun, msg: func(l *loopState) {
		if l.lookup(target) == nil {
			noproc()
			return
		}
		l.watch(target, watcher)
	}})
}

// postOrdered queues e for l behind what is queued already, and ahead of
// what is queued after it (messages from the network and from goroutines
// share that queue), running or waking l as DeliverSend does; only when
// the queue is full does it take the control queue, which is never
// refused. A link or monitor request from another node is thus handled
// before a message sent after it (by anyone that learned of it), as a
// local one is: on the control queue a message posted later could be
// handled first, in the same pass.
func postOrdered(l *loopState, e envelope) error {
	err := l.loop.PostRun(e)
	if errors.Is(postErr(err), ErrQueueFull) {
		err = l.loop.PostControlRun(e)
	}
	return postErr(err)
}

// DemonitorLocal cancels MonitorLocal.
func (w *Wire) DemonitorLocal(target, watcher Ref) error {
	if target.l == nil || target.l.sys != w.s {
		return ErrInvalidRef
	}
	return postOrdered(target.l, envelope{kind: kRun, msg: func(l *loopState) { l.unwatch(target, watcher) }})
}

// LinkLocal links the local actor target to the remote actor from, on
// behalf of from's node (Peer.Link); epoch gives the epoch of the
// transport's connection to from's node, read on target's loop when the
// link is made (see BreakLinks). If
// target is dead by the time its loop gets to it, noproc runs there: the
// transport answers with the exit signal of a dead actor (ErrDead), as a
// local link to a dead actor of another loop gets.
func (w *Wire) LinkLocal(target, from Ref, epoch func() uint64, noproc func()) error {
	if target.l == nil || target.l.sys != w.s || from.r == nil {
		return ErrInvalidRef
	}
	return postOrdered(target.l, envelope{kind: kRun, msg: func(l *loopState) {
		if s := l.lookup(target); s != nil {
			s.addRemoteLink(from, epoch())
			return
		}
		noproc()
	}})
}

// UnlinkLocal removes the link between the local actor target and the
// remote actor from (Peer.Unlink).
func (w *Wire) UnlinkLocal(target, from Ref) error {
	if target.l == nil || target.l.sys != w.s || from.r == nil {
		return ErrInvalidRef
	}
	return postOrdered(target.l, envelope{kind: kRun, msg: func(l *loopState) {
		if s := l.lookup(target); s != nil {
			s.removeLink(from)
		}
	}})
}

// SignalLocal delivers the exit signal a remote actor sent with Peer.Exit
// to the local actor to, with the semantics of Context.Exit (link false) or
// of the exit signal of a linked actor that stopped (link true: ignored
// unless the link still exists). A non-link signal whose reason matches
// ErrKilled is a Kill. The signal is queued behind the messages queued
// before it for to (it takes the control queue only when to's queue is
// full), and to's loop is run or woken.
func (w *Wire) SignalLocal(to, from Ref, reason error, link bool) error {
	if to.l == nil || to.l.sys != w.s || from.r == nil {
		return ErrInvalidRef
	}
	if !link && errors.Is(reason, ErrKilled) {
		return postErr(to.l.loop.PostControlRun(envelope{kind: kRun, msg: func(l *loopState) {
			if s := l.lookup(to); s != nil {
				l.kill(s, to)
			}
		}}))
	}
	e := envelope{kind: kSignal, to: to, from: from, err: reason}
	if link {
		e.pidx = 1
	}
	return postOrdered(to.l, e)
}

// BreakLinks ends every link between a local actor and an actor reached
// through p that was made on a connection epoch up to epoch (Peer.Link's,
// or LinkLocal's), as when that connection to p's node is lost: each local
// actor gets the exit signal of its linked remote actor with reason (an
// Exited message if it traps exits; otherwise it stops with reason, unless
// reason is nil). Links made on a later connection, which the loops may see
// before this request, are kept.
func (w *Wire) BreakLinks(p Peer, epoch uint64, reason error) {
	for _, ls := range w.s.loops {
		_ = ls.loop.PostControl(envelope{kind: kRun, msg: func(l *loopState) { l.breakLinks(p, epoch, reason) }})
	}
}

func (ls *loopState) breakLinks(p Peer, epoch uint64, reason error) {
	var hit []Ref // pairs: the local actor, then its linked remote actor
	for i := uint32(0); i < ls.next; i++ {
		s := ls.slotAt(i)
		if s.state == slotFree {
			continue
		}
		for _, l := range s.links {
			if e, ok := s.linkEpochs[l]; l.r != nil && l.r.peer == p && (!ok || e <= epoch) {
				hit = append(hit, Ref{l: ls, idx: i, gen: s.gen}, l)
			}
		}
	}
	for k := 0; k < len(hit); k += 2 {
		ls.signal(&envelope{kind: kSignal, to: hit[k], from: hit[k+1], err: reason, pidx: 1})
	}
}

// StopLocal stops a local actor on behalf of the network.
func (w *Wire) StopLocal(target Ref, reason error) error {
	if target.l == nil || target.l.sys != w.s {
		return ErrInvalidRef
	}
	return postErr(target.l.loop.PostControl(envelope{kind: kStop, to: target, err: reason}))
}
