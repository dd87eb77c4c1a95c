package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// New returns the factory of a supervisor actor with the given spec. Spawn
// it like any actor (actor.System.Spawn for a root supervisor) or make it a
// child of another supervisor with Sub. Its Start checks the spec (a
// *SpecError if a field is bad) and starts the static children in order; if
// one fails to start, the ones already started are stopped in reverse order
// and Start fails with an error matching ErrStartFailed and wrapping the
// child's error (so the spawn, or the parent supervisor's own start,
// fails). Children placed on other loops or other nodes are started
// asynchronously, right after Start, in the same order; a failure there
// makes the supervisor stop the started children and stop itself with a
// reason matching ErrStartFailed and actor.ErrShutdown.
func New(spec Spec) actor.Factory {
	return func() actor.Actor { return &sup{spec: spec} }
}

type childState uint8

const (
	stStopped    childState = iota // no instance (never started, ignored, stopped, or ended and not restarted)
	stRunning                      // a live instance
	stSuspended                    // ref valid, instance ended (crashed, or taken down for a restart in place)
	stRestarting                   // a restart attempt failed and a retry (tryAgain) is queued; no instance
)

type child struct {
	spec  ChildSpec
	ref   actor.Ref // the instance (running or suspended), zero otherwise
	last  actor.Ref // the ref before a failed restart: names a restarting dynamic child
	state childState
	stale int           // Crashed messages known to be stale (see endOp)
	crash actor.Crashed // the crash being handled (see why)
	retry uint32        // generation of the queued retry: older tryAgains are stale
	node  string        // a remote child: the node of its current instance, or of the last one or attempt
	ended error         // a remote child: why that instance ended or attempt failed (Candidates.Reason)
	wait  time.Duration // a remote child: the pause before its next retry (remoteRetry)
}

// tryAgain is the message a supervisor sends itself after a failed restart
// attempt (OTP's try_again_restart): it goes behind the messages already
// received, so requests and the parent's exit are handled between attempts.
type tryAgain struct {
	owner *sup // the supervisor instance that sent it: a restarted one ignores it
	ch    *child
	gen   uint32
}

// pending is the reply of a request that may be answered later.
type pending struct {
	done bool
	v    any
	err  error
	r    *actor.Reply
}

func (p *pending) reply(v any, err error) {
	if p == nil {
		return
	}
	if p.r != nil {
		p.r.Reply(v, err)
		return
	}
	p.done, p.v, p.err = true, v, err
}

type event struct {
	msg any
	p   *pending
}

// drain asks a child supervisor to stop all its children (and stay up), so
// that its parent can then stop or restart it.
type drain struct{}

// An op is one step of the supervisor's work. It either completes at once
// (zero Promise) or returns the promise to wait for and what to do with its
// result. Ops run one at a time, in order: while one waits, the events that
// reach the supervisor are held and handled after the last op.
type op func(c *actor.Context) (actor.Promise, func(c *actor.Context, v any, err error))

type sup struct {
	spec     Spec
	path     string
	log      *slog.Logger
	maxR     int
	maxT     time.Duration
	children []*child
	byRef    map[actor.Ref]*child
	window   window
	ops      []op
	deferred []event
	busy     bool // an op is waiting for its promise
	exiting  bool
	// adoptedBy is the parent of a supervisor spawned on this node for a
	// supervisor of another node (it has no parent here): see adopt.
	adoptedBy actor.Ref
	// adopted are the children of Spec.Adopt already adopted or tried.
	adopted map[string]bool
}

func (s *sup) simple() bool { return s.spec.Strategy == SimpleOneForOne }

func (s *sup) Start(c *actor.Context) error {
	if err := s.spec.Validate(); err != nil {
		return err
	}
	s.maxR, s.maxT = s.spec.MaxR, s.spec.MaxT
	if s.maxR == 0 {
		s.maxR = DefaultMaxR
	} else if s.maxR < 0 {
		s.maxR = 0
	}
	if s.maxT == 0 {
		s.maxT = DefaultMaxT
	}
	s.log = s.spec.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.path = c.Name()
	if s.path == "" {
		s.path = s.spec.Name
	}
	if s.path == "" {
		s.path = "supervisor"
	}
	s.byRef = make(map[actor.Ref]*child)
	c.TrapExits(true)
	if s.simple() {
		return nil
	}
	for _, cs := range s.spec.Children {
		s.children = append(s.children, &child{spec: cs})
	}
	for i := 0; i < len(s.children); {
		ch := s.children[i]
		var r actor.Ref
		err := actor.ErrNotLocal // a remote child starts asynchronously too
		if !ch.spec.remote() {
			r, err = c.Spawn(ch.spec.Start, s.spawnOpts(ch)...)
		}
		switch {
		case errors.Is(err, actor.ErrNotLocal):
			// The rest start in order, asynchronously, once Start returns.
			for _, rest := range s.children[i:] {
				s.ops = append(s.ops, s.startOp(rest, func(c *actor.Context, res startResult, err error) {
					s.initialStarted(c, rest, res, err)
				}))
			}
			s.run(c)
			return nil
		case err == nil:
			s.setRef(ch, r)
			ch.state = stRunning
			_ = c.Link(r)
			i++
		case errors.Is(err, ErrIgnore):
			if ch.spec.Restart == Temporary {
				s.remove(ch)
				continue
			}
			i++
		default:
			s.report(c, &Report{Kind: ChildStartFailed, ChildID: ch.spec.ID, Reason: err})
			s.Terminate(c, actor.ErrShutdown)
			return fmt.Errorf("%w: %s/%s: %w", ErrStartFailed, s.path, ch.spec.ID, err)
		}
	}
	return nil
}

// Terminate stops the children still running, in reverse start order: those
// on the supervisor's loop at once, those on other loops by a request that
// this (ending) supervisor cannot wait for (it turns into a kill if their
// loop gets to it after their shutdown timeout). Use the Shutdown request
// for an orderly, acknowledged shutdown across loops.
func (s *sup) Terminate(c *actor.Context, _ error) {
	for i := len(s.children) - 1; i >= 0; i-- {
		ch := s.children[i]
		if ch.ref.IsZero() {
			continue
		}
		ref, t := ch.ref, s.timeoutArg(ch)
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
		// Unlinked, the supervisor's own exit signal cannot overtake the
		// stop (and turn a kill into a graceful stop).
		_ = c.Unlink(ref)
		switch {
		case ref.IsRemote() || ref.Loop() != c.Loop():
			c.StopAsync(ref, actor.ErrShutdown, t)
		case t < 0:
			_ = c.Kill(ref)
		default:
			_ = c.Stop(ref, actor.ErrShutdown)
		}
	}
}

func (s *sup) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Crashed, actor.Exited:
		s.submit(c, event{msg: m})
		return nil, nil
	case tryAgain:
		if m.owner == s {
			s.submit(c, event{msg: m})
		}
		return nil, nil
	case actor.Ref:
		s.adopt(c, m)
		return nil, nil
	case StartChild, TerminateChild, RestartChild, DeleteChild, WhichChildren, CountChildren, GetChildSpec, Shutdown, drain, ReplaceChild, Detach:
		p := &pending{}
		s.submit(c, event{msg: m, p: p})
		if p.done {
			return p.v, p.err
		}
		p.r = c.Defer()
		return nil, nil
	}
	return nil, actor.Unhandled(msg)
}

// submit handles ev now, or after the work under way.
func (s *sup) submit(c *actor.Context, ev event) {
	if s.exiting {
		ev.p.reply(nil, ErrExiting)
		return
	}
	if s.busy || len(s.ops) > 0 || len(s.deferred) > 0 {
		s.deferred = append(s.deferred, ev)
		return
	}
	s.process(c, ev)
	s.run(c)
}

// run executes the queued ops, then the held events, until an op waits.
func (s *sup) run(c *actor.Context) {
	for !s.busy {
		if len(s.ops) > 0 {
			o := s.ops[0]
			s.ops[0] = nil
			s.ops = s.ops[1:]
			p, after := o(c)
			if p.IsZero() {
				continue
			}
			s.busy = true
			p.Then(func(c *actor.Context, v any, err error) {
				s.busy = false
				if after != nil {
					after(c, v, err)
				}
				s.run(c)
			})
			return
		}
		if len(s.deferred) == 0 || s.exiting {
			return
		}
		ev := s.deferred[0]
		s.deferred[0] = event{}
		s.deferred = s.deferred[1:]
		s.process(c, ev)
	}
}

func (s *sup) process(c *actor.Context, ev event) {
	switch m := ev.msg.(type) {
	case actor.Crashed:
		s.onCrash(c, m)
	case actor.Exited:
		s.onExit(c, m)
	case tryAgain:
		s.onTryAgain(c, m)
	case StartChild:
		s.onStartChild(m, ev.p)
	case TerminateChild:
		s.onTerminateChild(m, ev.p)
	case RestartChild:
		s.onRestartChild(m, ev.p)
	case ReplaceChild:
		s.onReplaceChild(c, m, ev.p)
	case DeleteChild:
		if s.simple() {
			ev.p.reply(nil, errSimple("DeleteChild"))
			return
		}
		ch := s.byID(m.ID)
		switch {
		case ch == nil:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrNotFound, m.ID))
		case ch.state == stRestarting:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrRestarting, m.ID))
		case ch.state != stStopped:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrRunning, m.ID))
		default:
			s.remove(ch)
			ev.p.reply(nil, nil)
		}
	case WhichChildren:
		out := make([]ChildInfo, 0, len(s.children))
		for _, ch := range s.children {
			st := ch.public()
			ci := ChildInfo{ID: ch.spec.ID, State: st, Running: st == ChildRunning,
				Supervisor: ch.spec.Supervisor, Significant: ch.spec.Significant, Restart: ch.spec.Restart}
			if st == ChildRunning {
				ci.Ref, ci.Node = ch.ref, ch.node
			}
			out = append(out, ci)
		}
		ev.p.reply(out, nil)
	case CountChildren:
		var n ChildCounts
		for _, ch := range s.children {
			if ch.public() == ChildRunning {
				n.Active++
			}
			if ch.spec.Supervisor {
				n.Supervisors++
			} else {
				n.Workers++
			}
		}
		n.Specs = len(s.children)
		if s.simple() {
			n.Specs = 1
		}
		ev.p.reply(n, nil)
	case GetChildSpec:
		if s.simple() && m.Ref.IsZero() {
			ev.p.reply(nil, errSimple("GetChildSpec"))
			return
		}
		ch := s.find(m.ID, m.Ref)
		if ch == nil {
			ev.p.reply(nil, fmt.Errorf("%w: %q %v", ErrNotFound, m.ID, m.Ref))
			return
		}
		cs := ch.spec
		if cs.Shutdown == 0 {
			cs.Shutdown = DefaultShutdown
			if cs.Supervisor {
				cs.Shutdown = Infinity
			}
		}
		ev.p.reply(cs, nil)
	case drain:
		s.stopAll()
		s.ops = append(s.ops, s.doOp(func(*actor.Context) { ev.p.reply(nil, nil) }))
	case Shutdown:
		s.stopAll()
		s.ops = append(s.ops, s.doOp(func(*actor.Context) { ev.p.reply(nil, nil) }), s.exitOp(nil))
	case Detach:
		s.detach(c, ev.p)
	}
}

// RemoteChildren lists the running children on other nodes, in start
// order, for the debugger (seam.RemoteChild): it reads them on the
// supervisor's loop between events.
func (s *sup) RemoteChildren() []seam.RemoteChild {
	var out []seam.RemoteChild
	for _, ch := range s.children {
		if ch.node != "" && ch.public() == ChildRunning {
			out = append(out, seam.RemoteChild{ID: ch.spec.ID, Ref: ch.ref.String(), Node: ch.node, Supervisor: ch.spec.Supervisor})
		}
	}
	return out
}

// UpgradeChild makes the supervisor start its child child (by the ref of
// its instance, or of the last one for a child being restarted) from start
// at every later start and restart, instead of its ChildSpec.Start, and
// returns the Start it replaces (GetChildSpec shows the new one). It is the
// hook of package upgrade, which swaps a child's version in place and then
// calls it inside the supervisor, between its events (as System.Inspect
// does); it must not be called from anywhere else, nor from another
// goroutine. It fails with ErrNotFound when child is not a child of this
// supervisor, and with an error matching ErrBadSpec for a nil start or a
// remote child (ChildSpec.Remote: created from a registered kind on
// another node, which has no Start to swap).
func (s *sup) UpgradeChild(child actor.Ref, start actor.Factory) (actor.Factory, error) {
	ch := s.find("", child)
	if ch == nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, child)
	}
	if start == nil {
		return nil, &SpecError{Child: ch.spec.ID, Field: "Start", Reason: "nil upgrade"}
	}
	if ch.spec.remote() {
		return nil, &SpecError{Child: ch.spec.ID, Field: "Remote",
			Reason: "a remote child cannot be upgraded in place"}
	}
	prev := ch.spec.Start
	ch.spec.Start = start
	return prev, nil
}

// public is the state WhichChildren shows: an instance taken down for a
// restart is restarting, not running.
func (ch *child) public() ChildState {
	switch ch.state {
	case stRunning:
		return ChildRunning
	case stSuspended, stRestarting:
		return ChildRestarting
	}
	return ChildStopped
}

func errSimple(req string) error {
	return fmt.Errorf("%w: %s by ID under simple_one_for_one (name the child by Ref)", ErrBadSpec, req)
}

func (s *sup) onStartChild(m StartChild, p *pending) {
	cs := m.Spec
	if s.simple() {
		if f := templateOnly(cs); f != "" {
			p.reply(nil, &SpecError{Child: fmt.Sprintf("%q", cs.ID), Field: f,
				Reason: "comes from the template under simple_one_for_one; set only Start (or Remote) and ID"})
			return
		}
		tmpl := s.spec.Children[0]
		if cs.Start != nil {
			tmpl.Start, tmpl.Remote = cs.Start, Remote{}
		}
		if cs.remote() {
			tmpl.Start, tmpl.Remote = nil, cs.Remote
		}
		if cs.ID != "" {
			tmpl.ID = cs.ID
		}
		if err := tmpl.check(&s.spec, "StartChild.Spec"); err != nil {
			p.reply(nil, err)
			return
		}
		cs = tmpl
	} else {
		if err := cs.check(&s.spec, "StartChild.Spec"); err != nil {
			p.reply(nil, err)
			return
		}
		if old := s.byID(cs.ID); old != nil {
			if old.state == stRunning {
				p.reply(nil, fmt.Errorf("%w: %q is %v", ErrAlreadyStarted, cs.ID, old.ref))
				return
			}
			p.reply(nil, fmt.Errorf("%w: %q", ErrAlreadyPresent, cs.ID))
			return
		}
	}
	ch := &child{spec: cs}
	s.children = append(s.children, ch)
	s.ops = append(s.ops, s.startOp(ch, func(_ *actor.Context, res startResult, err error) {
		switch {
		case res == started:
			p.reply(ch.ref, nil)
		case res == ignored && !s.simple() && cs.Restart != Temporary:
			p.reply(actor.Ref{}, nil) // kept, not running
		default:
			s.remove(ch)
			if res == ignored {
				err = nil
			}
			p.reply(actor.Ref{}, err)
		}
	}))
}

// templateOnly names a field of a StartChild spec that only the template
// may set under SimpleOneForOne, or returns "".
func templateOnly(cs ChildSpec) string {
	switch {
	case cs.Restart != Permanent:
		return "Restart"
	case cs.Shutdown != 0:
		return "Shutdown"
	case cs.Supervisor:
		return "Supervisor"
	case cs.Significant:
		return "Significant"
	case len(cs.Options) > 0:
		return "Options"
	}
	return ""
}

func (s *sup) onTerminateChild(m TerminateChild, p *pending) {
	if s.simple() && m.Ref.IsZero() {
		p.reply(nil, errSimple("TerminateChild"))
		return
	}
	ch := s.find(m.ID, m.Ref)
	if ch == nil {
		if !s.simple() || m.Ref.IsZero() {
			p.reply(nil, fmt.Errorf("%w: %q %v", ErrNotFound, m.ID, m.Ref))
			return
		}
		// Not a child: fine if it is gone already (it may have been one),
		// not if it is alive (someone else's).
		ref := m.Ref
		s.ops = append(s.ops, func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
			return c.AliveAsync(ref), func(_ *actor.Context, _ any, err error) {
				if errors.Is(err, actor.ErrDead) {
					p.reply(nil, nil)
					return
				}
				p.reply(nil, fmt.Errorf("%w: %v", ErrNotFound, ref))
			}
		})
		return
	}
	s.ops = append(s.ops, s.stopOp(ch, false), s.doOp(func(*actor.Context) {
		if ch.spec.Restart == Temporary || s.simple() {
			s.remove(ch)
		}
		p.reply(nil, nil)
	}))
}

func (s *sup) onRestartChild(m RestartChild, p *pending) {
	if s.simple() {
		p.reply(nil, errSimple("RestartChild"))
		return
	}
	ch := s.byID(m.ID)
	switch {
	case ch == nil:
		p.reply(nil, fmt.Errorf("%w: %q", ErrNotFound, m.ID))
	case ch.state == stRestarting:
		p.reply(nil, fmt.Errorf("%w: %q", ErrRestarting, m.ID))
	case ch.state != stStopped:
		p.reply(nil, fmt.Errorf("%w: %q", ErrRunning, m.ID))
	default:
		s.ops = append(s.ops, s.startOp(ch, func(_ *actor.Context, res startResult, err error) {
			if res == ignored {
				err = nil // the zero Ref, no error; it stays stopped, as after a failure
			}
			p.reply(ch.ref, err)
		}))
	}
}

func (s *sup) onCrash(c *actor.Context, m actor.Crashed) {
	ch := s.byRef[m.Child]
	if ch == nil || ch.state == stStopped {
		return // a child stopped or replaced since: stale
	}
	if ch.stale > 0 {
		ch.stale-- // taken down and restarted with its siblings already
		return
	}
	ch.state = stSuspended
	ch.crash = m
	if s.wants(c, ChildCrashed, errCrash) {
		reason := crashReason(m)
		s.report(c, &Report{Kind: ChildCrashed, ChildID: ch.spec.ID, Child: m.Child, Reason: reason,
			Panic: reason.Value, Stack: reason.Stack, PCs: reason.PCs})
	}
	if ch.spec.Supervisor {
		// A crashed supervisor's children are still running: stop it, which
		// sends them exit signals through their links, and start a new one.
		ref, reason := ch.ref, crashReason(m)
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
		s.ops = append(s.ops, func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
			return c.StopAsync(ref, reason, 0), nil
		})
	}
	s.failed(c, ch, errCrash)
	ch.crash = actor.Crashed{} // do not keep the crashed message alive
}

// errCrash is the reason failed gets for a crash: abnormal; built into a
// *actor.CrashError (crashReason, from the child's last crash) only where
// it is read, as most crashes are restarted without anyone reading it.
var errCrash = errors.New("crashed")

func crashReason(m actor.Crashed) *actor.CrashError {
	ce := &actor.CrashError{Actor: m.Child}
	if m.Crash != nil {
		ce.Value, ce.Stack, ce.PCs = m.Crash.Value, m.Crash.Stack, m.Crash.PCs
	}
	return ce
}

// why is reason as it is shown: a crash's CrashError.
func (ch *child) why(reason error) error {
	if reason == errCrash {
		return crashReason(ch.crash)
	}
	return reason
}

func (s *sup) onExit(c *actor.Context, m actor.Exited) {
	p := c.Parent()
	if p.IsZero() {
		p = s.adoptedBy
	}
	if !p.IsZero() && m.From == p {
		// The parent is gone: stop the children in order and follow it.
		s.stopAll()
		s.ops = append(s.ops, s.exitOp(m.Reason))
		return
	}
	ch := s.byRef[m.From]
	if ch == nil || ch.state != stRunning {
		return // not (or no longer) a child
	}
	s.setRef(ch, actor.Ref{})
	ch.state = stStopped
	ch.ended = m.Reason
	s.report(c, &Report{Kind: ChildExited, ChildID: ch.spec.ID, Child: m.From, Reason: m.Reason})
	s.failed(c, ch, m.Reason)
}

// abnormal reports whether an end with reason is abnormal (Erlang: neither
// normal nor shutdown nor {shutdown, _}).
func abnormal(reason error) bool {
	return reason != nil && !errors.Is(reason, actor.ErrShutdown)
}

// failed applies the restart type, the auto-shutdown, the intensity and
// the strategy to a child that crashed (suspended) or exited (stopped) by
// itself.
func (s *sup) failed(c *actor.Context, ch *child, reason error) {
	restart := ch.spec.Restart == Permanent || (ch.spec.Restart == Transient && abnormal(reason))
	if !restart {
		s.ops = append(s.ops, s.stopOp(ch, false), s.doOp(func(*actor.Context) {
			if ch.spec.Restart == Temporary || s.simple() {
				s.remove(ch)
			}
			s.autoShutdown(ch)
		}))
		return
	}
	if !s.window.add(c.Now(), s.maxR, s.maxT) {
		s.giveUp(c, fmt.Errorf("%w: %s: more than %d restarts in %v (child %q: %v)",
			ErrTooManyRestarts, s.path, s.maxR, s.maxT, ch.spec.ID, ch.why(reason)))
		return
	}
	s.restart(c, ch)
}

// autoShutdown shuts the supervisor down if significant child ch, which
// ended by itself and is not restarted, calls for it.
func (s *sup) autoShutdown(ch *child) {
	if !ch.spec.Significant || s.spec.AutoShutdown == Never {
		return
	}
	if s.spec.AutoShutdown == AllSignificant {
		for _, x := range s.children {
			if x.spec.Significant && x.state != stStopped {
				return
			}
		}
	}
	s.stopAll()
	s.ops = append(s.ops, s.exitOp(actor.ErrShutdown))
}

// restart restarts failed, a child that ended (or whose restart attempt
// failed), with the siblings its strategy says.
func (s *sup) restart(c *actor.Context, failed *child) {
	switch s.spec.Strategy {
	case OneForAll:
		s.restartGroup(failed, s.children)
	case RestForOne:
		for i, x := range s.children {
			if x == failed {
				s.restartGroup(failed, s.children[i:])
				break
			}
		}
	default:
		if len(s.ops) == 0 && !s.busy && failed.state == stSuspended && failed.ref.Loop() == c.Loop() {
			// The fast path: a crashed child of this loop, restarted in
			// place, now.
			if err := c.Restart(failed.ref); err != nil {
				failed.last = failed.ref
				s.setRef(failed, actor.Ref{})
				failed.state = stStopped
				s.restarted(c, failed, classify(err), err)
				return
			}
			failed.state = stRunning
			if s.wants(c, ChildRestarted, nil) {
				s.report(c, &Report{Kind: ChildRestarted, ChildID: failed.spec.ID, Child: failed.ref})
			}
			return
		}
		s.ops = append(s.ops, s.startOp(failed, func(c *actor.Context, res startResult, err error) {
			s.restarted(c, failed, res, err)
		}))
	}
}

// restartGroup takes down the running members of group other than failed,
// in reverse start order, and then starts every member in start order, as
// OTP does: the failed one, those taken down, and those that were not
// running (stopped by TerminateChild, ended and not restarted, ignored,
// restarting). Temporary members are stopped for good and forgotten.
func (s *sup) restartGroup(failed *child, group []*child) {
	group = append([]*child(nil), group...)
	gone := map[*child]bool{}
	for i := len(group) - 1; i >= 0; i-- {
		g := group[i]
		if g == failed || g.state != stRunning {
			continue
		}
		if g.spec.Restart == Temporary {
			gone[g] = true
			s.ops = append(s.ops, s.stopOp(g, false), s.doOp(func(*actor.Context) { s.remove(g) }))
			continue
		}
		s.ops = append(s.ops, s.stopOp(g, true))
	}
	for _, g := range group {
		if gone[g] {
			continue
		}
		s.ops = append(s.ops, s.startOp(g, func(c *actor.Context, res startResult, err error) {
			s.restarted(c, g, res, err)
		}))
	}
}

// restarted handles the outcome of a restart attempt of ch.
func (s *sup) restarted(c *actor.Context, ch *child, res startResult, err error) {
	switch res {
	case started:
		s.report(c, &Report{Kind: ChildRestarted, ChildID: ch.spec.ID, Child: ch.ref})
	case ignored:
		// Not running, not retried (OTP: pid undefined); a temporary or a
		// dynamic child is forgotten.
		if ch.spec.Restart == Temporary || s.simple() {
			s.remove(ch)
		}
	default:
		s.report(c, &Report{Kind: ChildStartFailed, ChildID: ch.spec.ID, Reason: err})
		s.retryLater(ch)
	}
}

// retryLater abandons the rest of the restart under way after ch failed to
// start: the members of its group still taken down are stopped for good (as
// OTP's, which are not running until the retry), ch is marked restarting,
// and the retry goes behind the messages already received, so that
// requests and the parent's exit are handled first (OTP-9549). A remote
// child's retry also waits (remoteRetry).
func (s *sup) retryLater(ch *child) {
	s.ops = s.ops[:0]
	ch.state = stRestarting
	ch.retry++
	msg := tryAgain{owner: s, ch: ch, gen: ch.retry}
	for i := len(s.children) - 1; i >= 0; i-- {
		if x := s.children[i]; x.state == stSuspended {
			s.ops = append(s.ops, s.stopOp(x, false))
		}
	}
	if ch.spec.remote() {
		ch.wait = min(max(2*ch.wait, remoteRetry[0]), remoteRetry[1])
		d := ch.wait
		s.ops = append(s.ops, s.doOp(func(c *actor.Context) { c.After(d, msg) }))
		return
	}
	s.ops = append(s.ops, s.doOp(func(c *actor.Context) { _ = c.Send(c.Self(), msg) }))
}

// remoteRetry is the pause before a remote child's next start after one
// failed: from the first value, doubling to the second, until a start
// succeeds. A remote start fails for a while when it fails (no live node,
// a node down or refusing connections), often at once: retried at once,
// as a local child's is, it would spend the restart intensity in an
// instant, whatever MaxT. Every attempt still counts.
var remoteRetry = [2]time.Duration{100 * time.Millisecond, 2 * time.Second}

// onTryAgain retries the restart of a child whose last attempt failed,
// unless it has been stopped or restarted since. Every attempt counts
// towards the restart intensity.
func (s *sup) onTryAgain(c *actor.Context, m tryAgain) {
	ch := m.ch
	if ch.state != stRestarting || ch.retry != m.gen {
		return
	}
	if !s.window.add(c.Now(), s.maxR, s.maxT) {
		s.giveUp(c, fmt.Errorf("%w: %s: more than %d restarts in %v (child %q failed to restart)",
			ErrTooManyRestarts, s.path, s.maxR, s.maxT, ch.spec.ID))
		return
	}
	s.restart(c, ch)
}

// initialStarted handles the start of a static child on another loop,
// while the supervisor itself starts: a failure makes the supervisor fail.
func (s *sup) initialStarted(c *actor.Context, ch *child, res startResult, err error) {
	switch res {
	case ignored:
		if ch.spec.Restart == Temporary {
			s.remove(ch)
		}
	case failedStart:
		s.report(c, &Report{Kind: ChildStartFailed, ChildID: ch.spec.ID, Reason: err})
		s.giveUp(c, &shutdownReason{fmt.Errorf("%w: %s/%s: %w", ErrStartFailed, s.path, ch.spec.ID, err)})
	}
}

// shutdownReason is a supervisor's own stop reason when it gives up: it
// matches actor.ErrShutdown, so its parent treats it as OTP's shutdown (a
// transient child supervisor that gave up is not restarted), and wraps the
// cause (ErrTooManyRestarts, ErrStartFailed).
type shutdownReason struct{ err error }

func (r *shutdownReason) Error() string        { return "shutdown: " + r.err.Error() }
func (r *shutdownReason) Unwrap() error        { return r.err }
func (r *shutdownReason) Is(target error) bool { return target == actor.ErrShutdown }

// giveUp drops the pending work, stops every child in reverse start order
// and stops the supervisor with reason (made to match actor.ErrShutdown).
func (s *sup) giveUp(c *actor.Context, reason error) {
	if !errors.Is(reason, actor.ErrShutdown) {
		reason = &shutdownReason{reason}
	}
	s.report(c, &Report{Kind: GaveUp, Reason: reason, Restarts: s.maxR, Within: s.maxT})
	s.ops = s.ops[:0]
	s.stopAll()
	s.ops = append(s.ops, s.exitOp(reason))
}

// stopAll queues the stop of every child, in reverse start order.
func (s *sup) stopAll() {
	for i := len(s.children) - 1; i >= 0; i-- {
		ch := s.children[i]
		s.ops = append(s.ops, s.stopOp(ch, false), s.doOp(func(*actor.Context) {
			if ch.spec.Restart == Temporary || s.simple() {
				s.remove(ch)
			}
		}))
	}
}

// doOp is an op that runs f and completes at once.
func (s *sup) doOp(f func(*actor.Context)) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		f(c)
		return actor.Promise{}, nil
	}
}

// exitOp answers the held requests and stops the supervisor with reason.
func (s *sup) exitOp(reason error) op {
	return s.doOp(func(c *actor.Context) {
		s.exiting = true
		for _, ev := range s.deferred {
			ev.p.reply(nil, ErrExiting)
		}
		s.deferred = nil
		_ = c.Stop(c.Self(), reason)
	})
}

type startResult uint8

const (
	started startResult = iota
	ignored
	failedStart
)

func classify(err error) startResult {
	switch {
	case err == nil:
		return started
	case errors.Is(err, ErrIgnore):
		return ignored
	}
	return failedStart
}

// startOp starts ch: in place if it has a ref (suspended), else by a fresh
// spawn; then reports the outcome to then (the child is running, or has no
// instance).
func (s *sup) startOp(ch *child, then func(*actor.Context, startResult, error)) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		finish := func(c *actor.Context, err error) {
			res := classify(err)
			if res == started {
				ch.state = stRunning
				ch.wait = 0 // any start that succeeds, RestartChild's too, ends the backoff
			} else {
				if !ch.ref.IsZero() {
					ch.last = ch.ref
				}
				s.setRef(ch, actor.Ref{})
				ch.state = stStopped
			}
			then(c, res, err)
		}
		linked := func(c *actor.Context, r actor.Ref) {
			s.setRef(ch, r)
			if err := c.Link(r); err != nil {
				// Not linked (its node is down again): nothing
				// would tell of its end, so it ends here.
				_ = c.Send(c.Self(), actor.Exited{From: r, Reason: err})
			} else if ch.spec.Supervisor {
				// Introduce itself as its parent (see adopt),
				// behind the link on the same connection.
				_ = c.Send(r, c.Self())
			}
		}
		if d, ok := s.adoption(ch); ok {
			// A running instance handed over by an earlier supervisor
			// (Spec.Adopt): linked, not started; if it cannot be
			// claimed, this same op starts it afresh.
			return s.adoptAsync(c, ch, d), func(c *actor.Context, v any, err error) {
				if err != nil {
					s.log.Info("supervisor: child not adopted; starting it afresh", "supervisor", s.path, "child", ch.spec.ID, "err", err)
					s.ops = append([]op{s.startOp(ch, then)}, s.ops...)
					return
				}
				ch.node, ch.ended = d.Node, nil
				linked(c, v.(actor.Ref))
				finish(c, nil)
			}
		}
		if ch.spec.remote() {
			// Always a fresh instance: its node may have gone, and the
			// placement may pick another.
			return s.remoteSpawn(c, ch), func(c *actor.Context, v any, err error) {
				ch.ended = err
				if err == nil {
					linked(c, v.(actor.Ref))
				}
				finish(c, err)
			}
		}
		if !ch.ref.IsZero() {
			return c.RestartAsync(ch.ref), func(c *actor.Context, _ any, err error) { finish(c, err) }
		}
		return c.SpawnAsync(ch.spec.Start, s.spawnOpts(ch)...), func(c *actor.Context, v any, err error) {
			if err == nil {
				r := v.(actor.Ref)
				s.setRef(ch, r)
				_ = c.Link(r)
			}
			finish(c, err)
		}
	}
}

// stopOp takes ch down: for good (forRestart false: its ref dies, it is
// stopped) or for a restart in place (the instance ends, the ref stays
// valid). A child supervisor is first asked to stop its own children,
// within ch's shutdown timeout; a child that does not end within the
// timeout is killed.
func (s *sup) stopOp(ch *child, forRestart bool) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		if ch.ref.IsZero() {
			if !forRestart {
				ch.state = stStopped // a restarting child is no longer retried
			}
			return actor.Promise{}, nil
		}
		t := s.timeoutArg(ch)
		// A remote child supervisor cannot be sent drain (unregistered
		// across nodes): it is stopped, and stops its children in its
		// Terminate.
		if ch.spec.Supervisor && ch.state == stRunning && t >= 0 && !ch.spec.remote() {
			return c.AskTimeout(ch.ref, drain{}, t), func(c *actor.Context, _ any, err error) {
				kill := errors.Is(err, actor.ErrTimeout)
				if kill {
					s.report(c, &Report{Kind: ChildKilled, ChildID: ch.spec.ID, Child: ch.ref, Reason: err})
				}
				s.ops = append([]op{s.endOp(ch, forRestart, kill)}, s.ops...)
			}
		}
		return s.endOp(ch, forRestart, false)(c)
	}
}

func (s *sup) endOp(ch *child, forRestart, kill bool) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		ref := ch.ref
		if ref.IsZero() {
			return actor.Promise{}, nil
		}
		t := s.timeoutArg(ch)
		if kill {
			t = -1
		}
		timedOut := func(c *actor.Context, err error) {
			if errors.Is(err, actor.ErrTimeout) {
				s.report(c, &Report{Kind: ChildKilled, ChildID: ch.spec.ID, Child: ref,
					Reason: fmt.Errorf("shutdown timeout %v passed: %w", t, err)})
			}
		}
		// A remote child is not suspended but stopped: its restart is a
		// fresh spawn (startOp).
		if forRestart && !ch.spec.remote() {
			return c.SuspendAsync(ref, actor.ErrRestart, t), func(c *actor.Context, _ any, err error) {
				switch {
				case err == nil:
					ch.state = stSuspended
				case errors.Is(err, actor.ErrTimeout):
					timedOut(c, err) // suspended without Terminate when its loop gets to it
					ch.state = stSuspended
				case errors.Is(err, actor.ErrCrashed):
					ch.stale++ // its Crashed is on the way, or held: ignore it
					ch.state = stSuspended
				default: // dead meanwhile: it will be spawned afresh
					s.setRef(ch, actor.Ref{})
					ch.state = stStopped
				}
			}
		}
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
		ch.ended = nil
		// Unlinked, no exit signal of the supervisor (which may stop right
		// after) can overtake the stop and turn a kill into a graceful
		// stop; the stop itself ends the child in every case.
		_ = c.Unlink(ref)
		return c.StopAsync(ref, actor.ErrShutdown, t), func(c *actor.Context, v any, err error) {
			timedOut(c, err)
			if why, _ := v.(error); err == nil && !s.fineEnd(ch, why, t < 0) {
				s.report(c, &Report{Kind: ShutdownError, ChildID: ch.spec.ID, Child: ref, Reason: why})
			}
		}
	}
}

// fineEnd reports whether a child the supervisor stopped ended with a
// reason OTP accepts: shutdown, or killed when it was killed; normal or
// {shutdown, _} too for a child that is not permanent. A child chooses
// another reason by stopping itself in its Terminate.
func (s *sup) fineEnd(ch *child, why error, killed bool) bool {
	switch {
	case why == actor.ErrShutdown, errors.Is(why, actor.ErrDead):
		return true // ErrDead: it had ended by itself already
	case errors.Is(why, actor.ErrKilled):
		return killed
	case why == nil || errors.Is(why, actor.ErrShutdown):
		return ch.spec.Restart != Permanent
	}
	return false
}

// timeoutArg turns a ChildSpec.Shutdown into a StopAsync timeout.
func (s *sup) timeoutArg(ch *child) time.Duration {
	switch d := ch.spec.Shutdown; {
	case d < 0:
		return -1
	case d == 0 && ch.spec.Supervisor, d == Infinity:
		return 0
	case d == 0:
		return DefaultShutdown
	default:
		return d
	}
}

func (s *sup) spawnOpts(ch *child) []actor.SpawnOption {
	opts := make([]actor.SpawnOption, 0, 2+len(ch.spec.Options))
	opts = append(opts, actor.Supervised(), actor.Name(s.path+"/"+ch.spec.ID))
	return append(opts, ch.spec.Options...)
}

func (s *sup) setRef(ch *child, r actor.Ref) {
	if r == ch.ref {
		return
	}
	if !ch.ref.IsZero() {
		delete(s.byRef, ch.ref)
	}
	ch.stale = 0 // stale Crashed messages name the old ref, which no longer matches
	ch.ref = r
	if !r.IsZero() {
		s.byRef[r] = ch
	}
}

func (s *sup) remove(ch *child) {
	s.setRef(ch, actor.Ref{})
	ch.state = stStopped
	for i, x := range s.children {
		if x == ch {
			s.children = append(s.children[:i], s.children[i+1:]...)
			return
		}
	}
}

// byID finds a static child by ID.
func (s *sup) byID(id string) *child {
	for _, ch := range s.children {
		if ch.spec.ID == id {
			return ch
		}
	}
	return nil
}

// find finds a child by ref (its instance's, or for a restarting child the
// one it had), or by ID when ref is zero (static strategies).
func (s *sup) find(id string, ref actor.Ref) *child {
	if ref.IsZero() {
		if s.simple() {
			return nil
		}
		return s.byID(id)
	}
	if ch := s.byRef[ref]; ch != nil {
		return ch
	}
	for _, ch := range s.children {
		if ch.state == stRestarting && ch.last == ref {
			return ch
		}
	}
	return nil
}

// window counts restarts within the intensity period.
type window struct {
	ts   []time.Time
	head int
}

// add records a restart at now and reports whether the restarts within maxT
// are still at most maxR.
func (w *window) add(now time.Time, maxR int, maxT time.Duration) bool {
	w.ts = append(w.ts, now)
	w.prune(now, maxT)
	return len(w.ts)-w.head <= maxR
}

func (w *window) prune(now time.Time, maxT time.Duration) {
	for w.head < len(w.ts) && now.Sub(w.ts[w.head]) > maxT {
		w.head++
	}
	if w.head > 32 && w.head*2 > len(w.ts) {
		n := copy(w.ts, w.ts[w.head:])
		w.ts = w.ts[:n]
		w.head = 0
	}
}

func (w *window) count() int { return len(w.ts) - w.head }
