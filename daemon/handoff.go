package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/upgrade"
)

// State handoffs: a kind whose running actors can give their state to a
// new instance on another daemon, which may run another binary. The state
// crosses as msgpack: its type is the contract between the versions.

// KindHandoff exports the state of a running actor of Kind and imports it
// into a new one (Config.Handoffs). Make one with Handoff; the zero value
// is refused by Config.Validate.
type KindHandoff struct {
	// Kind is the kind (in Config.Kinds).
	Kind string

	bad error
	// hold holds ref and returns its state, encoded.
	hold func(ctx context.Context, sys *actor.System, ref actor.Ref, o upgrade.HoldOptions) (*upgrade.Held, []byte, error)
	// imp makes the instance from an encoded state.
	imp func(state []byte) (actor.Actor, error)
}

// MaxHandoffState bounds a child's encoded state: it crosses in one
// message to the target daemon.
const MaxHandoffState = 1 << 20

// Handoff registers how a running actor of kind (whose instances are As)
// gives its state to a new instance on another daemon, for a child's move
// (`actord app move`, `actord drain`). export runs on the actor's loop,
// between two of its messages and once its outstanding continuations have
// run, while its messages are held; it must copy what it returns and not
// block. The S it returns is encoded with msgpack (at most
// MaxHandoffState bytes) and decoded into the target daemon's S, whose
// import makes the new instance (its Start then runs, as for any spawn:
// timers do not cross). The daemons may run different binaries: the
// target's S must decode what the source's encodes (msgpack maps by
// field name: a field added in the new version is zero when the old one
// sent it). An error or a panic of either refuses the move; the actor
// runs on where it was.
func Handoff[A actor.Actor, S any](kind string, export func(A) (S, error), imp func(S) (A, error)) KindHandoff {
	h := KindHandoff{Kind: kind}
	switch {
	case export == nil:
		h.bad = errors.New("no export")
		return h
	case imp == nil:
		h.bad = errors.New("no import")
		return h
	}
	h.hold = func(ctx context.Context, sys *actor.System, ref actor.Ref, o upgrade.HoldOptions) (*upgrade.Held, []byte, error) {
		held, s, err := upgrade.Hold(ctx, sys, ref, export, o)
		if err != nil {
			return nil, nil, err
		}
		b, err := msgpack.Marshal(s)
		if err == nil && len(b) > MaxHandoffState {
			err = fmt.Errorf("%d bytes, at most %d", len(b), MaxHandoffState)
		}
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = held.Resume(rctx)
			return nil, nil, fmt.Errorf("%w: %w: encoding the state: %w", upgrade.ErrRefused, upgrade.ErrExport, err)
		}
		return held, b, nil
	}
	h.imp = func(state []byte) (a actor.Actor, err error) {
		defer func() {
			if p := recover(); p != nil {
				a, err = nil, fmt.Errorf("import panicked: %v", p)
			}
		}()
		var s S
		if err := msgpack.Unmarshal(state, &s); err != nil {
			return nil, fmt.Errorf("decoding the state into %v: %w", reflect.TypeFor[S](), err)
		}
		x, err := imp(s)
		if err != nil {
			return nil, err
		}
		if isNilActor(x) {
			return nil, errors.New("import returned nil")
		}
		return x, nil
	}
	return h
}

// checkHandoffs checks Config.Handoffs against the kinds.
func checkHandoffs(hs []KindHandoff, kinds Kinds) error {
	seen := map[string]bool{}
	for i, h := range hs {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("handoffs[%d] (%q): %s", i, truncate(h.Kind, 64), fmt.Sprintf(format, args...))
		}
		switch {
		case h.bad != nil:
			return bad("%v", h.bad)
		case h.hold == nil:
			return bad("not made with daemon.Handoff")
		case kinds[h.Kind] == nil:
			return bad("%q is not a kind of this daemon", truncate(h.Kind, 64))
		case seen[h.Kind]:
			return bad("registered twice")
		}
		seen[h.Kind] = true
	}
	return nil
}

// handoffTable indexes Config.Handoffs (checked).
func handoffTable(hs []KindHandoff) map[string]KindHandoff {
	t := make(map[string]KindHandoff, len(hs))
	for _, h := range hs {
		t[h.Kind] = h
	}
	return t
}

// Bounds of a child's move.
const (
	// holdTimeout bounds the hold and export on the child's daemon (the
	// wait for the child's continuations included).
	holdTimeout = 10 * time.Second
	// importTimeout bounds the start of the new instance on the target.
	importTimeout = 15 * time.Second
	// releaseTimeout bounds the end of the hold (resume or forward).
	releaseTimeout = 10 * time.Second
	// moveAskSlack is a round trip added to a bound of another daemon's
	// step, so that the mover does not give up before its answer.
	moveAskSlack = 5 * time.Second
	// forwardGrace is how long an old instance forwards to the new one
	// (or until its daemon stops): senders holding its ref have that long
	// to learn the new one (a dead ref tells them to resolve it again).
	forwardGrace = 30 * time.Second
	// maxHolds bounds the children a daemon holds at once for movers.
	maxHolds = 16
)

// holdMax bounds how long a child stays held if its mover never ends the
// hold: then it is resumed, or killed if the mover armed the hold (and no
// longer counts against maxHolds). Above a move's usual steps together,
// not its worst case: a move whose steps are slow to their bounds may
// find the hold ended at the arm (it then fails, the old instance
// resumed), or killed after it (the reply says so). A variable for tests.
var holdMax = time.Minute

// holdBackstop is added to holdMax for the hold's own bound
// (upgrade.HoldOptions.Max, which resumes, or kills once armed): the
// daemon ends the hold at holdMax itself, as its mover asked, and the
// hold's bound only covers a daemon that could not.
const holdBackstop = 30 * time.Second

// childHold asks a member's gateway to hold its actor Ref, which runs
// Kind, and export its state (a childHeld).
type childHold struct {
	Ref  actor.Ref
	Kind string
}

// childHeld answers childHold: Code one of the mv* codes; Token names
// the hold for childRelease.
type childHeld struct {
	Code  int
	Msg   string
	State []byte
	Token uint64
}

// childRelease ends a hold: Resume, or Forward to To; or Kill the child
// held. Arm does not end it: from then on the hold's bound kills the
// child rather than resume it (the mover is about to have the root take
// the new instance, after which the old one must not resume unless told
// to); Kill arms it too.
type childRelease struct {
	Token  uint64
	To     actor.Ref
	Resume bool
	Kill   bool
	Arm    bool
}

// childReleased answers childRelease and spawnImport (Ref, the new
// instance).
type childReleased struct {
	Code int
	Msg  string
	Ref  actor.Ref
}

// spawnImport asks a member's gateway to make an actor of Kind (with
// Args) from State, tied to Owner as SpawnKind's (a childReleased).
// Move names the move (move_cancel.go): one import per move, refused
// once the move is cancelled (cancelImport).
type spawnImport struct {
	Kind  string
	Args  any
	Owner actor.Ref
	State []byte
	Move  string
}

// localImport is a spawnImport of this daemon's own mover. Its type is
// not registered on the node, so that it cannot come from the network:
// the gateway takes the other move messages from members only (a
// one-way send from a client arrives without a sender, like a local one).
type localImport struct{ m spawnImport }

// Codes of childHeld and childReleased.
const (
	mvOK        = 0
	mvNoHandoff = 1 // no handoff for the kind here: nothing happened
	mvExport    = 2 // the export failed: nothing happened
	mvImport    = 3 // the import (or the kind) failed: nothing made
	mvFailed    = 4 // any other failure; nothing happened
	mvUnknown   = 5 // no answer in time: it may have happened
)

// holdTable is the children this daemon holds for movers, by token; n
// counts them (at most maxHolds).
type holdTable struct {
	mu sync.Mutex
	m  map[uint64]heldChild
	n  atomic.Int32
	// fwd are the children of this daemon turned into forwarders, and
	// when (those older than forwardGrace have stopped by themselves).
	fwd map[actor.Ref]time.Time
}

// heldChild is a child held for a mover; armed, its bound kills it.
type heldChild struct {
	h     *upgrade.Held
	ref   actor.Ref
	armed bool
}

// put records a hold under a random token: a token names a hold to
// whoever releases it, so it must not be guessed from others.
func (t *holdTable) put(h *upgrade.Held, ref actor.Ref) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[uint64]heldChild{}
	}
	for {
		var b [8]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		tok := binary.LittleEndian.Uint64(b[:])
		if _, dup := t.m[tok]; tok != 0 && !dup {
			t.m[tok] = heldChild{h: h, ref: ref}
			return tok
		}
	}
}

// take removes the hold tok; whoever took it (its h not nil) uncounts it
// from n once done with it.
func (t *holdTable) take(tok uint64) heldChild {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.m[tok]
	delete(t.m, tok)
	return h
}

// arm marks the hold tok armed and returns it (ok false: no such hold).
func (t *holdTable) arm(tok uint64) (heldChild, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.m[tok]
	if ok {
		h.armed = true
		t.m[tok] = h
	}
	return h, ok
}

// disarm undoes arm for a hold whose arming failed.
func (t *holdTable) disarm(tok uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.m[tok]; ok {
		h.armed = false
		t.m[tok] = h
	}
}

// bound ends the hold tok at holdMax unless a release took it first (a
// mover that never releases must not leave it held, nor counted): it
// resumes the child, or kills it if the hold was armed. A hold that ended
// by itself first (the child's end) is forgotten then. It returns early
// when the daemon stops.
func (d *Daemon) bound(tok uint64, h *upgrade.Held) {
	t := time.NewTimer(holdMax)
	defer t.Stop()
	select {
	case <-h.Done():
	case <-t.C:
	case <-d.done:
		return
	}
	hc := d.holds.take(tok)
	if hc.h == nil {
		return // a release took it
	}
	defer d.holds.n.Add(-1)
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	switch {
	case hc.armed:
		// The mover may have had the root take the new instance: this
		// one must not resume beside it. The root, if it still has this
		// one, sees it killed and restarts it afresh.
		if err := d.sys.Kill(ctx, hc.ref); err != nil && !errors.Is(err, actor.ErrDead) {
			d.log.Error("applications: a child held for a move past its bound was not killed", "ref", hc.ref.String(), "err", err)
		}
	default:
		_ = hc.h.Resume(ctx) // ended by itself already, or resumed now
	}
}

// forwarding records ref, just made a forwarder, and forgets those whose
// grace has passed (so the record stays bounded by the moves of a grace).
func (t *holdTable) forwarding(ref actor.Ref, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fwd == nil {
		t.fwd = map[actor.Ref]time.Time{}
	}
	for r, at := range t.fwd {
		if now.Sub(at) > forwardGrace {
			delete(t.fwd, r)
		}
	}
	t.fwd[ref] = now
}

// forwarders lists the forwarders that may still run.
func (t *holdTable) forwarders(now time.Time) []actor.Ref {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []actor.Ref
	for r, at := range t.fwd {
		if now.Sub(at) <= forwardGrace {
			out = append(out, r)
		}
	}
	return out
}

// forwardersEndWait bounds how long a stopping daemon waits for its
// forwarders' asks in flight to be answered (within the ask timeout of
// their answers, normally at once).
const forwardersEndWait = 5 * time.Second

// endForwarders stops this daemon's forwarders, each once the asks it
// passed on have been answered (upgrade.EndForward), within
// forwardersEndWait: a daemon that stops right after its children moved
// away would otherwise answer those asks with an error while the new
// instances still handle them, and their askers, gone on, would see
// their effect after later answers.
func (d *Daemon) endForwarders(ctx context.Context) {
	refs := d.holds.forwarders(time.Now())
	if len(refs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, forwardersEndWait)
	defer cancel()
	if endForwardersHook != nil {
		endForwardersHook()
	}
	var wg sync.WaitGroup
	for _, r := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := upgrade.EndForward(ctx, d.sys, r); err != nil {
				d.log.Warn("applications: a forwarder had asks unanswered when the daemon stopped", "ref", r.String(), "err", err)
			}
		}()
	}
	wg.Wait()
}

// endForwardersHook, if set (tests), is called when a stopping daemon
// begins to end its forwarders.
var endForwardersHook func()

// holdChild carries out a childHold here.
func (d *Daemon) holdChild(ctx context.Context, m childHold) childHeld {
	if m.Ref.IsZero() || m.Ref.IsRemote() {
		return childHeld{Code: mvFailed, Msg: fmt.Sprintf("on %s: the child is not one of this daemon's", d.cfg.Name)}
	}
	h, ok := d.handoffs[m.Kind]
	if !ok {
		return childHeld{Code: mvNoHandoff, Msg: fmt.Sprintf("kind %q has no handoff registered on %s", truncate(m.Kind, 64), d.cfg.Name)}
	}
	if d.holds.n.Add(1) > maxHolds {
		d.holds.n.Add(-1)
		return childHeld{Code: mvFailed, Msg: fmt.Sprintf("%s holds %d children for moves already", d.cfg.Name, maxHolds)}
	}
	ctx, cancel := context.WithTimeout(ctx, holdTimeout)
	defer cancel()
	held, state, err := h.hold(ctx, d.sys, m.Ref, upgrade.HoldOptions{Max: holdMax + holdBackstop})
	if err != nil {
		d.holds.n.Add(-1)
		code := mvFailed
		switch {
		case errors.Is(err, upgrade.ErrExport):
			code = mvExport
		case errors.Is(err, upgrade.ErrWrongVersion):
			code = mvNoHandoff
		case !errors.Is(err, upgrade.ErrRefused):
			code = mvUnknown // held after all, perhaps: its bound resumes it
		}
		return childHeld{Code: code, Msg: fmt.Sprintf("on %s: %v", d.cfg.Name, err)}
	}
	tok := d.holds.put(held, m.Ref)
	go d.bound(tok, held)
	return childHeld{State: state, Token: tok}
}

// releaseChild carries out a childRelease here.
func (d *Daemon) releaseChild(ctx context.Context, m childRelease) childReleased {
	if m.Arm || m.Kill {
		// A kill leaves the hold armed in the table: should the kill
		// fail, the bound kills the child rather than resume it; once
		// the child has ended, the bound forgets the hold.
		hc, ok := d.holds.arm(m.Token)
		if !ok {
			return childReleased{Code: mvFailed, Msg: fmt.Sprintf("on %s: no such hold (it ended)", d.cfg.Name)}
		}
		// The hold's own bound (the backstop, should this daemon's
		// bound fail to kill the child) kills it too, never resumes it.
		actx, acancel := context.WithTimeout(ctx, releaseTimeout)
		err := hc.h.Arm(actx)
		acancel()
		if err != nil && !m.Kill {
			// The mover takes a failed arm as not armed: it resumes the
			// child and never asks the root, so the bound must resume
			// it too (with its state), not kill it.
			d.holds.disarm(m.Token)
			return childReleased{Code: mvFailed, Msg: fmt.Sprintf("on %s: arming the hold: %v", d.cfg.Name, err)}
		}
		if m.Kill {
			kctx, cancel := context.WithTimeout(ctx, releaseTimeout)
			defer cancel()
			if err := d.sys.Kill(kctx, hc.ref); err != nil && !errors.Is(err, actor.ErrDead) {
				return childReleased{Code: mvFailed, Msg: fmt.Sprintf("on %s: killing the held child: %v (it is killed at its hold's bound)", d.cfg.Name, err)}
			}
		}
		return childReleased{}
	}
	hc := d.holds.take(m.Token)
	held := hc.h
	if held == nil {
		return childReleased{Code: mvFailed, Msg: fmt.Sprintf("on %s: no such hold (it ended)", d.cfg.Name)}
	}
	defer d.holds.n.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, releaseTimeout)
	defer cancel()
	var err error
	if m.Resume {
		err = held.Resume(ctx)
	} else {
		err = held.Forward(ctx, m.To, forwardGrace)
	}
	if err != nil {
		return childReleased{Code: mvFailed, Msg: fmt.Sprintf("on %s: %v", d.cfg.Name, err)}
	}
	if !m.Resume {
		d.holds.forwarding(hc.ref, time.Now())
	}
	return childReleased{}
}

// spawnImported answers a spawnImport, on the gateway's loop: the import
// runs here (it must not block), the spawn as SpawnKind's.
func (g *Gateway) spawnImported(c *actor.Context, m spawnImport) (any, error) {
	fail := func(code int, format string, args ...any) (any, error) {
		return childReleased{Code: code, Msg: fmt.Sprintf("on %s: ", g.d.cfg.Name) + fmt.Sprintf(format, args...)}, nil
	}
	h, ok := g.d.handoffs[m.Kind]
	if !ok {
		return fail(mvNoHandoff, "kind %q has no handoff registered", truncate(m.Kind, 64))
	}
	if len(m.State) > MaxHandoffState {
		return fail(mvImport, "a state of %d bytes, at most %d", len(m.State), MaxHandoffState)
	}
	if len(m.Move) > maxMoveID {
		return fail(mvImport, "a move's name of %d bytes, at most %d", len(m.Move), maxMoveID)
	}
	var rec *importRec
	if m.Move != "" {
		var ok bool
		if rec, ok = g.imports.begin(c, m.Move); !ok {
			return fail(mvFailed, "the move was cancelled, or is made already")
		}
	}
	g.mu.Lock()
	k, ok := g.kinds[m.Kind]
	g.mu.Unlock()
	if !ok {
		return fail(mvNoHandoff, "kind %q is not registered", truncate(m.Kind, 64))
	}
	fresh, err := callKind(k, normalise(m.Args))
	if err != nil {
		return fail(mvImport, "kind %q: %v", m.Kind, err)
	}
	a, err := h.imp(m.State)
	if err != nil {
		return fail(mvImport, "kind %q: %v", m.Kind, err)
	}
	// The imported instance first; its restarts are fresh ones.
	var first atomic.Bool
	f := func() actor.Actor {
		if first.CompareAndSwap(false, true) {
			return a
		}
		return fresh()
	}
	rep := c.Defer()
	g.spawnTied(c, m.Kind, f, m.Owner, func(ref actor.Ref, err error) {
		if err == nil && rec != nil {
			if rec.cancelled { // its mover gave up on it meanwhile
				_ = c.Kill(ref)
				err = errors.New("the move was cancelled")
			} else {
				rec.ref = ref
			}
		}
		if err != nil {
			rep.Reply(childReleased{Code: mvImport, Msg: fmt.Sprintf("on %s: kind %q: %v", g.d.cfg.Name, m.Kind, err)}, nil)
			return
		}
		rep.Reply(childReleased{Ref: ref}, nil)
	})
	return nil, nil
}

// moveStep runs a handoff step for a mover (another member's, or this
// daemon's) on a goroutine of its own; holds are bounded by maxHolds.
func (g *Gateway) moveStep(c *actor.Context, run func(ctx context.Context) any) (any, error) {
	rep := c.Defer()
	go func() {
		ctx, cancel := context.WithTimeout(g.ctx, holdTimeout+releaseTimeout)
		defer cancel()
		rep.Reply(run(ctx), nil)
	}()
	return nil, nil
}
