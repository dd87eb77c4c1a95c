package supervisor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
)

// New returns the factory of a supervisor actor with the given spec. Spawn
// it like any actor (actor.System.Spawn for a root supervisor) or make it a
// child of another supervisor with Sub. Its Start starts the static
// children in order; if one fails to start, the ones already started are
// stopped in reverse order and Start fails with an error matching
// ErrStartFailed and wrapping the child's error (so the spawn, or the
// parent supervisor's own start, fails). Children placed on other loops
// are started asynchronously, right after Start, in the same order; a
// failure there makes the supervisor stop the started children and stop
// itself with that error.
func New(spec Spec) actor.Factory {
	return func() actor.Actor { return &sup{spec: spec} }
}

type childState uint8

const (
	stStopped   childState = iota // no instance (never started, stopped, or forgotten)
	stRunning                     // a live instance
	stSuspended                   // ref valid, instance ended (crashed, or taken down for a restart in place)
)

type child struct {
	spec  ChildSpec
	ref   actor.Ref
	state childState
	stale int // Crashed messages known to be stale (see stopOp)
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
	starting bool // the initial start is still under way (children on other loops)
	exiting  bool
}

func (s *sup) Start(c *actor.Context) error {
	if err := s.spec.validate(); err != nil {
		return err
	}
	s.maxR, s.maxT = s.spec.MaxR, s.spec.MaxT
	if s.maxR == 0 {
		s.maxR = DefaultMaxR
	} else if s.maxR < 0 {
		s.maxR = 0
	}
	if s.maxT <= 0 {
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
	if s.spec.Strategy == SimpleOneForOne {
		return nil
	}
	for _, cs := range s.spec.Children {
		s.children = append(s.children, &child{spec: cs})
	}
	for i, ch := range s.children {
		r, err := c.Spawn(ch.spec.Start, s.spawnOpts(ch)...)
		if errors.Is(err, actor.ErrNotLocal) {
			// The rest start in order, asynchronously, once Start returns.
			s.starting = true
			for _, rest := range s.children[i:] {
				s.ops = append(s.ops, s.startOp(rest, false, s.initialFailure(rest)))
			}
			s.ops = append(s.ops, func(*actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
				s.starting = false
				return actor.Promise{}, nil
			})
			s.run(c)
			return nil
		}
		if err != nil {
			s.report(c, &Report{Kind: ChildStartFailed, ChildID: ch.spec.ID, Reason: err})
			s.Terminate(c, actor.ErrShutdown)
			return fmt.Errorf("%w: %s/%s: %w", ErrStartFailed, s.path, ch.spec.ID, err)
		}
		s.setRef(ch, r)
		ch.state = stRunning
		_ = c.Link(r)
	}
	return nil
}

// Terminate stops the children still running, in reverse start order: those
// on the supervisor's loop at once, those on other loops by a request that
// this (ending) supervisor cannot wait for. Use the Shutdown request for an
// orderly, acknowledged shutdown across loops.
func (s *sup) Terminate(c *actor.Context, _ error) {
	for i := len(s.children) - 1; i >= 0; i-- {
		ch := s.children[i]
		if ch.ref.IsZero() {
			continue
		}
		ref, t := ch.ref, s.timeoutArg(ch)
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
		switch {
		case ref.Loop() != c.Loop():
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
	case StartChild, TerminateChild, RestartChild, DeleteChild, Shutdown, drain:
		p := &pending{}
		s.submit(c, event{msg: m, p: p})
		if p.done {
			return p.v, p.err
		}
		p.r = c.Defer()
		return nil, nil
	case WhichChildren:
		out := make([]ChildInfo, 0, len(s.children))
		for _, ch := range s.children {
			out = append(out, ChildInfo{ID: ch.spec.ID, Ref: ch.ref, Running: ch.state != stStopped,
				Supervisor: ch.spec.Supervisor, Restart: ch.spec.Restart})
		}
		return out, nil
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
	case StartChild:
		s.onStartChild(c, m, ev.p)
	case TerminateChild:
		ch := s.findReq(m.ID, m.Ref)
		if ch == nil {
			ev.p.reply(nil, fmt.Errorf("%w: %q %v", ErrNotFound, m.ID, m.Ref))
			return
		}
		s.ops = append(s.ops, s.stopOp(ch, false), s.doOp(func(*actor.Context) {
			if ch.spec.Restart == Temporary || s.spec.Strategy == SimpleOneForOne {
				s.remove(ch)
			}
			ev.p.reply(nil, nil)
		}))
	case RestartChild:
		ch := s.findReq(m.ID, actor.Ref{})
		switch {
		case ch == nil:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrNotFound, m.ID))
		case ch.state != stStopped:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrRunning, m.ID))
		default:
			s.ops = append(s.ops, s.startOp(ch, false, func(_ *actor.Context, _ *child, err error) { ev.p.reply(nil, err) }),
				s.doOp(func(*actor.Context) {
					if ch.state == stRunning {
						ev.p.reply(ch.ref, nil)
					}
				}))
		}
	case DeleteChild:
		ch := s.findReq(m.ID, actor.Ref{})
		switch {
		case ch == nil:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrNotFound, m.ID))
		case ch.state != stStopped:
			ev.p.reply(nil, fmt.Errorf("%w: %q", ErrRunning, m.ID))
		default:
			s.remove(ch)
			ev.p.reply(nil, nil)
		}
	case drain:
		s.stopAll()
		s.ops = append(s.ops, s.doOp(func(*actor.Context) { ev.p.reply(nil, nil) }))
	case Shutdown:
		s.stopAll()
		s.ops = append(s.ops, s.doOp(func(*actor.Context) { ev.p.reply(nil, nil) }), s.exitOp(nil))
	}
}

func (s *sup) onStartChild(c *actor.Context, m StartChild, p *pending) {
	cs := m.Spec
	if s.spec.Strategy == SimpleOneForOne {
		tmpl := s.spec.Children[0]
		if cs.Start != nil {
			tmpl.Start = cs.Start
		}
		if cs.ID != "" {
			tmpl.ID = cs.ID
		}
		cs = tmpl
	} else {
		if cs.Start == nil {
			p.reply(nil, fmt.Errorf("%w: child %q has no Start", ErrBadSpec, cs.ID))
			return
		}
		if s.findReq(cs.ID, actor.Ref{}) != nil {
			p.reply(nil, fmt.Errorf("%w: %q", ErrAlreadyPresent, cs.ID))
			return
		}
	}
	ch := &child{spec: cs}
	s.children = append(s.children, ch)
	s.ops = append(s.ops, s.startOp(ch, false, func(_ *actor.Context, _ *child, err error) {
		s.remove(ch)
		p.reply(nil, err)
	}), s.doOp(func(*actor.Context) {
		if ch.state == stRunning {
			p.reply(ch.ref, nil)
		}
	}))
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
	var reason error = &actor.CrashError{Actor: m.Child}
	rep := &Report{Kind: ChildCrashed, ChildID: ch.spec.ID, Child: m.Child, Reason: reason}
	if m.Crash != nil {
		reason = &actor.CrashError{Actor: m.Child, Value: m.Crash.Value, Stack: m.Crash.Stack, PCs: m.Crash.PCs}
		rep.Reason, rep.Panic, rep.Stack, rep.PCs = reason, m.Crash.Value, m.Crash.Stack, m.Crash.PCs
	}
	s.report(c, rep)
	if ch.spec.Supervisor {
		// A crashed supervisor's children are still running: stop it, which
		// sends them exit signals through their links, and start a new one.
		ref := ch.ref
		s.setRef(ch, actor.Ref{})
		ch.state = stStopped
		s.ops = append(s.ops, func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
			return c.StopAsync(ref, reason, 0), nil
		})
	}
	s.failed(c, ch, reason)
}

func (s *sup) onExit(c *actor.Context, m actor.Exited) {
	if p := c.Parent(); !p.IsZero() && m.From == p {
		// The parent is gone: stop the children in order and follow it.
		s.stopAll()
		s.ops = append(s.ops, s.exitOp(m.Reason))
		return
	}
	ch := s.byRef[m.From]
	if ch == nil {
		return // not (or no longer) a child
	}
	s.setRef(ch, actor.Ref{})
	ch.state = stStopped
	s.report(c, &Report{Kind: ChildExited, ChildID: ch.spec.ID, Child: m.From, Reason: m.Reason})
	s.failed(c, ch, m.Reason)
}

// abnormal reports whether an end with reason is abnormal (Erlang: neither
// normal nor shutdown).
func abnormal(reason error) bool {
	return reason != nil && !errors.Is(reason, actor.ErrShutdown)
}

// failed applies the restart type, the intensity and the strategy to a
// child that crashed (suspended) or exited (stopped).
func (s *sup) failed(c *actor.Context, ch *child, reason error) {
	restart := ch.spec.Restart == Permanent || (ch.spec.Restart == Transient && abnormal(reason))
	if !restart {
		s.ops = append(s.ops, s.stopOp(ch, false), s.doOp(func(*actor.Context) {
			if ch.spec.Restart == Temporary || s.spec.Strategy == SimpleOneForOne {
				s.remove(ch)
			}
		}))
		return
	}
	if !s.window.add(c.Now(), s.maxR, s.maxT) {
		s.giveUp(c, fmt.Errorf("%w: %s: more than %d restarts in %v (child %q: %v)",
			ErrTooManyRestarts, s.path, s.maxR, s.maxT, ch.spec.ID, reason))
		return
	}
	switch s.spec.Strategy {
	case OneForAll:
		s.restartGroup(ch, s.children)
	case RestForOne:
		for i, x := range s.children {
			if x == ch {
				s.restartGroup(ch, s.children[i:])
				break
			}
		}
	default:
		if len(s.ops) == 0 && !s.busy && ch.state == stSuspended && ch.ref.Loop() == c.Loop() {
			// The fast path: a crashed child of this loop, restarted in
			// place, now.
			if err := c.Restart(ch.ref); err != nil {
				s.setRef(ch, actor.Ref{})
				ch.state = stStopped
				s.restartFailed(c, ch, err)
				return
			}
			ch.state = stRunning
			s.report(c, &Report{Kind: ChildRestarted, ChildID: ch.spec.ID, Child: ch.ref})
			return
		}
		s.ops = append(s.ops, s.startOp(ch, true, s.restartFailed))
	}
}

// restartGroup takes down the running members of group other than failed,
// in reverse start order, and restarts them and failed in start order.
// Temporary members are stopped for good.
func (s *sup) restartGroup(failed *child, group []*child) {
	group = append([]*child(nil), group...)
	var again []*child
	for i := len(group) - 1; i >= 0; i-- {
		g := group[i]
		if g == failed || g.state == stStopped {
			continue
		}
		if g.spec.Restart == Temporary {
			s.ops = append(s.ops, s.stopOp(g, false), s.doOp(func(*actor.Context) { s.remove(g) }))
			continue
		}
		s.ops = append(s.ops, s.stopOp(g, true))
		again = append(again, g)
	}
	for _, g := range group {
		if g == failed {
			s.ops = append(s.ops, s.startOp(g, true, s.restartFailed))
			continue
		}
		for _, a := range again {
			if a == g {
				s.ops = append(s.ops, s.startOp(g, true, s.restartFailed))
			}
		}
	}
}

// restartFailed handles a child whose restart failed: it counts as another
// restart, and is retried unless that exceeds the intensity.
func (s *sup) restartFailed(c *actor.Context, ch *child, err error) {
	if !s.window.add(c.Now(), s.maxR, s.maxT) {
		s.giveUp(c, fmt.Errorf("%w: %s: more than %d restarts in %v (child %q failed to restart: %w)",
			ErrTooManyRestarts, s.path, s.maxR, s.maxT, ch.spec.ID, err))
		return
	}
	s.ops = append([]op{s.startOp(ch, true, s.restartFailed)}, s.ops...)
}

// initialFailure handles a child on another loop that failed to start while
// the supervisor was starting: the supervisor fails.
func (s *sup) initialFailure(ch *child) func(*actor.Context, *child, error) {
	return func(c *actor.Context, _ *child, err error) {
		s.giveUp(c, fmt.Errorf("%w: %s/%s: %w", ErrStartFailed, s.path, ch.spec.ID, err))
	}
}

// giveUp drops the pending work, stops every child in reverse start order
// and stops the supervisor with reason.
func (s *sup) giveUp(c *actor.Context, reason error) {
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
			if ch.spec.Restart == Temporary || s.spec.Strategy == SimpleOneForOne {
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

// startOp starts ch: in place if it has a ref (suspended), else by a fresh
// spawn. onFail handles a failure.
func (s *sup) startOp(ch *child, restart bool, onFail func(*actor.Context, *child, error)) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		done := func(c *actor.Context) {
			ch.state = stRunning
			if restart {
				s.report(c, &Report{Kind: ChildRestarted, ChildID: ch.spec.ID, Child: ch.ref})
			}
		}
		fail := func(c *actor.Context, err error) {
			s.setRef(ch, actor.Ref{})
			ch.state = stStopped
			s.report(c, &Report{Kind: ChildStartFailed, ChildID: ch.spec.ID, Reason: err})
			onFail(c, ch, err)
		}
		if !ch.ref.IsZero() {
			return c.RestartAsync(ch.ref), func(c *actor.Context, _ any, err error) {
				if err != nil {
					fail(c, err)
					return
				}
				done(c)
			}
		}
		return c.SpawnAsync(ch.spec.Start, s.spawnOpts(ch)...), func(c *actor.Context, v any, err error) {
			if err != nil {
				fail(c, err)
				return
			}
			r := v.(actor.Ref)
			s.setRef(ch, r)
			_ = c.Link(r)
			done(c)
		}
	}
}

// stopOp takes ch down: for good (forRestart false: its ref dies) or for a
// restart in place (the instance ends, the ref stays valid). A child
// supervisor is first asked to stop its own children, within ch's shutdown
// timeout; a child that does not end within the timeout is killed.
func (s *sup) stopOp(ch *child, forRestart bool) op {
	return func(c *actor.Context) (actor.Promise, func(*actor.Context, any, error)) {
		if ch.ref.IsZero() {
			return actor.Promise{}, nil
		}
		t := s.timeoutArg(ch)
		if ch.spec.Supervisor && ch.state == stRunning && t >= 0 {
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
		if forRestart {
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
		return c.StopAsync(ref, actor.ErrShutdown, t), func(c *actor.Context, _ any, err error) {
			timedOut(c, err)
		}
	}
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
	if !ch.ref.IsZero() {
		delete(s.byRef, ch.ref)
	}
	ch.ref = r
	if !r.IsZero() {
		s.byRef[r] = ch
	}
}

func (s *sup) remove(ch *child) {
	s.setRef(ch, actor.Ref{})
	for i, x := range s.children {
		if x == ch {
			s.children = append(s.children[:i], s.children[i+1:]...)
			return
		}
	}
}

// findReq finds a child by ref, or by ID when ref is zero.
func (s *sup) findReq(id string, ref actor.Ref) *child {
	if !ref.IsZero() {
		return s.byRef[ref]
	}
	if s.spec.Strategy == SimpleOneForOne {
		return nil
	}
	for _, ch := range s.children {
		if ch.spec.ID == id {
			return ch
		}
	}
	return nil
}

func (sp Spec) validate() error {
	if sp.Strategy > SimpleOneForOne {
		return fmt.Errorf("%w: unknown strategy %d", ErrBadSpec, sp.Strategy)
	}
	if sp.Strategy == SimpleOneForOne {
		if len(sp.Children) != 1 || sp.Children[0].Start == nil {
			return fmt.Errorf("%w: simple_one_for_one needs exactly one template child with a Start", ErrBadSpec)
		}
		return nil
	}
	seen := make(map[string]bool, len(sp.Children))
	for _, cs := range sp.Children {
		if cs.Start == nil {
			return fmt.Errorf("%w: child %q has no Start", ErrBadSpec, cs.ID)
		}
		if seen[cs.ID] {
			return fmt.Errorf("%w: duplicate child id %q", ErrBadSpec, cs.ID)
		}
		seen[cs.ID] = true
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
