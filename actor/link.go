package actor

import "errors"

// Links, exit signals and kills (Erlang's link/1, unlink/1, exit/2,
// process_flag(trap_exit, true)). Everything here names actors by Ref only,
// so that the remote layer can offer the same calls for refs on other nodes.

// ErrKilled is the reason of an actor ended by Kill (or by a stop or suspend
// that was still waiting when its deadline passed, see StopAsync): its
// Terminate method did not run. Monitors and links see it as the reason.
var ErrKilled = errors.New("actor: killed")

// Exited is delivered to an actor that traps exits (see TrapExits) instead
// of the exit signal that would have stopped it: From is the linked actor
// that stopped (or the actor that called Exit) and Reason its reason, nil for
// a normal exit. The actor keeps running.
type Exited struct {
	From   Ref
	Reason error
}

// Link links the running actor and r, both ways (Erlang's link/1). When
// either stops, the other gets an exit signal carrying the stop reason: a
// normal stop (reason nil) does nothing to an actor that does not trap exits;
// any other reason stops it with the same reason (its Terminate runs, and its
// own links and monitors are told in turn); an actor that traps exits gets an
// Exited message instead and keeps running. A crash of a Supervised actor is
// not a stop (it is suspended for its parent), so it sends no exit signal;
// the Crashed message is the parent's business. A restart keeps links.
//
// Linking an actor of this loop that is dead fails with ErrDead. For an actor
// of another loop the link is made asynchronously, and if the actor turns out
// to be dead the running actor gets an exit signal with ErrDead (Erlang's
// noproc), which stops it unless it traps exits. Linking twice, or linking
// oneself, does nothing. It returns ErrInvalidRef for the zero Ref and
// ErrShutdown during shutdown.
//
// r may be an actor of another node (a remote ref): the link is made there
// asynchronously as for another loop, and exit signals cross the network
// both ways. When the connection to that node is lost (heartbeats time
// out, the node stops, or it dials this node again after losing its own
// connection), the link ends on both sides as if the other actor had
// stopped with a reason matching remote.ErrNodeDown (Erlang's
// noconnection). An exit signal is never refused for a full outbound
// queue. Link returns the transport's error (actor.ErrQueueFull, a closed
// node) if the request cannot be queued, and then no link is made.
func (c *Context) Link(r Ref) error { return r.box().link(c, r) }

// Unlink removes the link between the running actor and r, if any. An exit
// signal of r already on its way is then ignored. For a remote r the far
// half is removed asynchronously, by a request behind the running actor's
// earlier messages to r.
func (c *Context) Unlink(r Ref) error { return r.box().unlink(c, r) }

// TrapExits turns exit signals into Exited messages for the running actor
// (on) or back into stops (off). It is off for every new instance, including
// one created by a restart, so a Start method that wants it sets it. Kill is
// never trapped.
func (c *Context) TrapExits(on bool) { c.slot.trap = on }

// Exit sends r an exit signal with reason (Erlang's exit/2): if r traps exits
// it gets Exited{From: the running actor, Reason: reason}; otherwise a nil
// reason does nothing and any other reason stops r with it. The signal
// travels with the running actor's messages to r, so it arrives after them
// (for a remote r too, on the same connection). A reason matching ErrKilled
// is a Kill. It returns ErrInvalidRef for the zero Ref and ErrShutdown
// during shutdown; a dead r is ignored.
func (c *Context) Exit(r Ref, reason error) error {
	if errors.Is(reason, ErrKilled) {
		reason = ErrKilled // a kill, whatever wraps it
	}
	return r.box().exit(c.origin(), r, c.self, reason, false)
}

// Kill ends r at once, without running its Terminate method, with reason
// ErrKilled for its monitors and links (an actor linked to it that does not
// trap exits stops with ErrKilled too, its own Terminate running). It cannot
// be trapped. On this loop it happens now (or, if r's handler is on the stack,
// as soon as it returns); on another loop it goes ahead of the messages queued
// for r; on another node it goes when it arrives there (behind the running
// actor's earlier messages to r on the connection, ahead of those queued
// for r on its node). Killing a dead actor is not an error.
func (c *Context) Kill(r Ref) error {
	return r.box().exit(c.origin(), r, c.self, ErrKilled, false)
}

func (ls *loopState) kill(s *slot, r Ref) error {
	s.noTerm = true
	return ls.stop(s, r, ErrKilled)
}

// sendSignal sends the exit signal of from (stopped with reason) to to. A
// signal travels with from's messages; if the target queue is full it takes
// the unbounded control queue instead, like a Down: it is never lost.
func (ls *loopState) sendSignal(from, to Ref, reason error, link bool) {
	_ = to.box().exit(ls.origin(), to, from, reason, link)
}

// signal handles an exit signal on the target's loop.
func (ls *loopState) signal(e *envelope) {
	s := ls.lookup(e.to)
	if s == nil {
		return
	}
	if e.pidx == 1 && !s.removeLink(e.from) {
		return // unlinked meanwhile
	}
	if s.trap {
		ls.deliver(&envelope{kind: kSend, to: e.to, from: e.from, msg: Exited{From: e.from, Reason: e.err}})
		return
	}
	if e.err == nil {
		return
	}
	ls.stop(s, e.to, e.err)
}

// addRemoteLink records a link with the remote actor r, made on the
// connection epoch given (see wire.BreakLinks).
func (s *slot) addRemoteLink(r Ref, epoch uint64) {
	addRef(&s.links, r)
	if s.linkEpochs == nil {
		s.linkEpochs = map[Ref]uint64{}
	}
	s.linkEpochs[r] = epoch
}

// removeLink removes the link with r, reporting whether there was one.
func (s *slot) removeLink(r Ref) bool {
	delete(s.linkEpochs, r) // only remote links have an epoch
	return removeRef(&s.links, r)
}

func addRef(rs *[]Ref, r Ref) {
	for _, x := range *rs {
		if x == r {
			return
		}
	}
	*rs = append(*rs, r)
}

func removeRef(rs *[]Ref, r Ref) bool {
	for i, x := range *rs {
		if x == r {
			*rs = append((*rs)[:i], (*rs)[i+1:]...)
			return true
		}
	}
	return false
}
