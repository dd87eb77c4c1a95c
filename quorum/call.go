package quorum

import (
	"cmp"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/seam"
)

// ErrNoQuorum means a quorum call did not settle with a result. The *Error
// that matches it says why (its Cause) and what each failed ask got.
var ErrNoQuorum = errors.New("quorum: no quorum")

// ErrBadSpec means a call's Spec has no quorum function, or its
// configuration is the zero Configuration.
var ErrBadSpec = errors.New("quorum: bad call")

// ErrPanic is the Cause of a call run by a Caller whose quorum function or
// PerNode function panicked: the call fails instead of the Caller's actor.
var ErrPanic = errors.New("quorum: the quorum function panicked")

// Error is the failure of a quorum call. It matches ErrNoQuorum and its
// Cause with errors.Is, and the error of every failed ask (errors.Is(err,
// actor.ErrTimeout) tells whether one timed out).
type Error struct {
	Config   ConfigID  // the configuration asked
	Asked    int       // nodes asked (or to be asked), PerNode skips excluded
	Replies  int       // successful replies received before the call failed
	Failures []Failure // the failed asks, in the order they failed
	// Cause is why the call stopped: the quorum function's error (such as
	// ErrUnreachable), ErrIncomplete, or the caller's context error.
	Cause error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "quorum: no quorum: %v (%d asked, %d replied, %d failed", e.Cause, e.Asked, e.Replies, len(e.Failures))
	if len(e.Failures) > 0 {
		fmt.Fprintf(&b, "; first: %v: %v", e.Failures[0].Node.ref, e.Failures[0].Err)
	}
	b.WriteString(")")
	return b.String()
}

// Is reports whether target is ErrNoQuorum.
func (e *Error) Is(target error) bool { return target == ErrNoQuorum }

// Unwrap returns the Cause and the errors of the failed asks.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, len(e.Failures)+1)
	if e.Cause != nil {
		errs = append(errs, e.Cause)
	}
	for _, f := range e.Failures {
		errs = append(errs, f.Err)
	}
	return errs
}

// Spec describes a quorum call: when the replies are enough (Quorum), and
// how the requests go out. A Spec is a value; one can serve many calls.
type Spec[Req, Rep, Res any] struct {
	// Quorum decides when the call has enough replies and what it returns.
	// Required.
	Quorum QuorumFunc[Req, Rep, Res]
	// PerNode, if set, makes each node's request from the call's: it
	// returns the message for node n, or false to skip n, which is then
	// neither asked nor waited for (Replies.Asked counts the others).
	PerNode func(req Req, n *Node) (Req, bool)
	// Timeout bounds the call: every ask fails with actor.ErrTimeout once
	// it has passed. Default: the Manager's (ManagerConfig.Timeout); a
	// goroutine's call is also bounded by its context's deadline.
	Timeout time.Duration
	// Thrifty, if above zero, makes the call ask first only the fastest
	// nodes that form a quorum of kind Kind (by the nodes' statistics:
	// lowest latency first, nodes whose last ask failed last, nodes never
	// asked first so that they get measured), and the others once Thrifty
	// has passed without a result, as soon as one of the first asks fails,
	// or when they have all replied without the quorum function settling.
	// Fewer messages when all goes well, a little more latency when not.
	Thrifty time.Duration
	// Kind is the kind of quorum a thrifty call asks first.
	Kind Kind
}

// CorrectableSpec describes a correctable call: a quorum call that reports
// its result each time it improves (see CorrectableFunc). The other fields
// are those of Spec.
type CorrectableSpec[Req, Rep, Res any] struct {
	Levels  CorrectableFunc[Req, Rep, Res]
	PerNode func(req Req, n *Node) (Req, bool)
	Timeout time.Duration
	Thrifty time.Duration
	Kind    Kind
}

// Update is one report of a correctable call: a result, its level, and
// whether it is the last. A final Update may carry an error (an *Error)
// instead of a result.
type Update[Res any] struct {
	Value Res
	Level int
	Final bool
	Err   error
}

// options are the parts of a Spec the engine needs besides the function.
type options[Req any] struct {
	perNode func(req Req, n *Node) (Req, bool)
	timeout time.Duration
	thrifty time.Duration
	kind    Kind
}

type askState uint8

const (
	stFirst    askState = iota // to be asked at start
	stDeferred                 // a thrifty call's: asked later if needed
	stSent
	stAnswered
	stSkipped // PerNode said no
)

// call is one quorum call, run on the loop of the actor that makes it (a
// user's actor, or a Caller's). Its fields are touched on that loop only,
// but for abort. Its configuration is rs.cfg, its Manager rs.cfg.m.
type call[Req, Rep, Res any] struct {
	req      Req
	opts     options[Req]
	qf       QuorumFunc[Req, Rep, Res]
	corr     *correctable[Req, Rep, Res] // instead of qf
	rs       Replies[Rep]
	asks     []ask
	msg      any // the request, boxed once for every node; with PerNode, a []any of each node's
	deadline time.Time
	timer    actor.Timer  // the thrifty timer
	abort    *atomic.Bool // set by a goroutine that gave up on the call
	onDone   func(c *actor.Context, res Res, level int, err error)
	promise  actor.Promise // Ask's, settled through the promise seam, instead of onDone
	firstOut int32         // first-wave asks not answered yet
	second   bool          // every ask the call will make is out (or dropped)
	done     bool
	contain  bool // run by a Caller's actor: recover panics of the user's functions
}

// correctable is what only a correctable call needs, apart from the call:
// the other calls are smaller without it.
type correctable[Req, Rep, Res any] struct {
	f       CorrectableFunc[Req, Rep, Res]
	best    Res // the result of the highest level so far
	level   int
	onLevel func(c *actor.Context, res Res, level int)
}

// callN is a call with room for the asks and replies of up to N nodes,
// so that a call of the usual sizes is one allocation of about its own
// size: calls of 3 and 5 nodes take half the room of a call with room for
// 8, and most calls ask 3.
type (
	call3[Req, Rep, Res any] struct {
		call[Req, Rep, Res]
		asks [3]ask
		ok   [3]Reply[Rep]
	}
	call5[Req, Rep, Res any] struct {
		call[Req, Rep, Res]
		asks [5]ask
		ok   [5]Reply[Rep]
	}
)

// ask is the state of one node's ask.
type ask struct {
	sent time.Duration // when it was sent, from the call's deadline
	def  *deferred     // a thrifty call's ask not sent yet, in the registry
	st   askState
}

func newCall[Req, Rep, Res any](cfg Configuration, req Req, o options[Req]) (*call[Req, Rep, Res], error) {
	if cfg.m == nil {
		return nil, fmt.Errorf("%w: the zero Configuration", ErrBadSpec)
	}
	if o.timeout <= 0 {
		o.timeout = cfg.m.timeout
	}
	var cl *call[Req, Rep, Res]
	switch n := cfg.Size(); {
	case n <= 3:
		w := &call3[Req, Rep, Res]{}
		cl = &w.call
		cl.asks, cl.rs.ok = w.asks[:n], w.ok[:0]
	case n <= 5:
		w := &call5[Req, Rep, Res]{}
		cl = &w.call
		cl.asks, cl.rs.ok = w.asks[:n], w.ok[:0]
	default:
		cl = &call[Req, Rep, Res]{asks: make([]ask, n), rs: Replies[Rep]{ok: make([]Reply[Rep], 0, n)}}
	}
	cl.rs.cfg, cl.req, cl.opts = cfg, req, o
	return cl, nil
}

// start makes the requests and sends the first asks, on the caller's loop.
func (cl *call[Req, Rep, Res]) start(c *actor.Context) {
	if cl.contain {
		defer cl.recoverPanic(c)
	}
	now := c.Now()
	self := c.Self() // the caller; every later step of the call runs inside it too
	cl.deadline = now.Add(cl.opts.timeout)
	cl.rs.live = fullNodeSet(len(cl.asks))
	var msgs []any
	if cl.opts.perNode == nil {
		cl.msg = cl.req // one box for every node's ask
	} else {
		msgs = make([]any, len(cl.asks))
		cl.msg = msgs
	}
	for i, node := range cl.rs.cfg.nodes {
		a := &cl.asks[i]
		if cl.opts.perNode != nil {
			m, ok := cl.opts.perNode(cl.req, node)
			if !ok {
				a.st = stSkipped
				cl.rs.live.remove(i)
				continue
			}
			msgs[i] = m
		}
		cl.rs.asked++
	}
	cl.rs.pending = cl.rs.asked
	if cl.evaluate(c) {
		return
	}
	defs := false
	if cl.opts.thrifty > 0 {
		first := cl.fastest()
		for i := range cl.asks {
			if cl.asks[i].st == stFirst && !first.Has(i) {
				cl.asks[i].st = stDeferred
				d := &deferred{caller: self, node: cl.rs.cfg.nodes[i].id, pos: i, deadline: cl.deadline, call: cl}
				cl.asks[i].def, defs = d, true
				cl.rs.cfg.m.defer_.add(d, now)
			}
		}
	}
	for i := range cl.asks {
		if cl.asks[i].st == stFirst {
			cl.firstOut++
			cl.rs.cfg.m.defer_.flush(c, self, cl.rs.cfg.nodes[i].id, nil)
			cl.send(c, i, now)
		}
	}
	if !defs {
		cl.second = true
		return
	}
	// A function timer, not a message: in a user's actor, a message would
	// go to its own Receive.
	cl.timer = promises.AfterFunc(c, cl.opts.thrifty, cl, argSecondWave)
}

// argSecondWave is the argument of Continue for the thrifty timer; the
// others are the positions of the nodes asked.
const argSecondWave = -1

// Continue is the call's continuation for every ask and its thrifty timer
// (through the promise seam: no closure each).
func (cl *call[Req, Rep, Res]) Continue(c *actor.Context, arg int, v any, err error) {
	if arg == argSecondWave {
		cl.secondWave(c)
		return
	}
	cl.onReply(c, arg, v, err)
}

// fastest returns the first wave of a thrifty call: the best-ranked nodes
// that form a quorum of the call's kind, or every asked node if none does.
func (cl *call[Req, Rep, Res]) fastest() NodeSet {
	type cand struct {
		pos     int
		failing bool
		lat     time.Duration
	}
	var buf [8]cand // the candidates of the usual calls, on the stack
	cs := buf[:0]
	for i := range cl.asks {
		if cl.asks[i].st == stFirst {
			n := cl.rs.cfg.nodes[i]
			cs = append(cs, cand{pos: i, failing: n.Failing(), lat: time.Duration(n.latency.Load())})
		}
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		if a.failing != b.failing {
			if a.failing {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.lat, b.lat)
	})
	var set NodeSet
	for _, c := range cs {
		set.Add(c.pos)
		if cl.rs.cfg.IsQuorum(cl.opts.kind, set) {
			return set
		}
	}
	return set
}

// send asks node i (which must not have been asked).
func (cl *call[Req, Rep, Res]) send(c *actor.Context, i int, now time.Time) {
	a := &cl.asks[i]
	d := cl.deadline.Sub(now)
	a.st, a.sent = stSent, -d
	if d <= 0 {
		// The call's time is up: fail this ask without sending it, in a
		// later turn like any other answer.
		p := promises.New(c)
		promises.Resolve(p, nil, fmt.Errorf("%w: the call's deadline passed before this node was asked", actor.ErrTimeout))
		promises.Then(p, cl, i)
		return
	}
	msg := cl.msg
	if cl.opts.perNode != nil {
		msg = msg.([]any)[i]
	}
	promises.Then(c.AskTimeout(cl.rs.cfg.nodes[i].ref, msg, d), cl, i)
}

// sendDeferred sends a thrifty call's deferred ask to node i, if the call
// still wants it; the registry has taken it (and the earlier ones of the
// same caller to the same node) off its queue.
func (cl *call[Req, Rep, Res]) sendDeferred(c *actor.Context, i int) {
	if cl.done || cl.asks[i].st != stDeferred {
		return
	}
	cl.send(c, i, c.Now())
}

// secondWave asks the nodes a thrifty call left out. The asks that the same
// caller deferred to the same nodes in earlier calls go first, so that
// each node sees the caller's requests in the order the calls were made.
func (cl *call[Req, Rep, Res]) secondWave(c *actor.Context) {
	if cl.second || cl.done {
		return
	}
	cl.second = true
	cl.timer.Cancel()
	for i := range cl.asks { // in the order they were deferred
		if d := cl.asks[i].def; d != nil {
			cl.asks[i].def = nil
			cl.rs.cfg.m.defer_.flush(c, d.caller, d.node, d)
		}
	}
}

// onReply counts one ask's outcome and settles the call if it can.
func (cl *call[Req, Rep, Res]) onReply(c *actor.Context, i int, v any, err error) {
	now := c.Now()
	node := cl.rs.cfg.nodes[i]
	var rep Rep
	if err == nil && v != nil {
		r, ok := v.(Rep)
		if ok {
			rep = r
		} else {
			err = fmt.Errorf("%w: %T from %v", ErrBadReply, v, node.ref)
		}
	}
	node.observe(now, now.Sub(cl.deadline.Add(cl.asks[i].sent)), err)
	if err != nil && cl.rs.cfg.m.onFailure != nil {
		cl.rs.cfg.m.failed(node, err) // also after the call settled
	}
	if cl.done {
		return
	}
	if cl.contain {
		defer cl.recoverPanic(c)
	}
	if cl.abort != nil && cl.abort.Load() {
		var zero Res
		cl.finish(c, zero, 0, cl.fail(errAborted))
		return
	}
	cl.asks[i].st = stAnswered
	cl.rs.pending--
	if err != nil {
		cl.rs.failed = append(cl.rs.failed, Failure{Node: node, Err: err})
		cl.rs.live.remove(i)
	} else {
		cl.rs.ok = append(cl.rs.ok, Reply[Rep]{Node: node, Value: rep})
		cl.rs.okSet.Add(i)
	}
	first := !cl.second
	if first {
		cl.firstOut--
		if err != nil {
			cl.secondWave(c) // a first ask failed: the others are needed now
		}
	}
	if cl.evaluate(c) {
		return
	}
	if first && cl.firstOut == 0 {
		cl.secondWave(c) // the fastest replied and that was not enough
	}
}

// errAborted is the Cause of a call whose goroutine stopped waiting (its
// context was cancelled); nobody reads it.
var errAborted = errors.New("quorum: the caller gave up")

// evaluate runs the quorum function and settles the call if it says so,
// or if no ask is left. It reports whether the call is settled.
func (cl *call[Req, Rep, Res]) evaluate(c *actor.Context) bool {
	var zero Res
	if cl.qf != nil {
		res, ok, err := cl.qf(cl.req, &cl.rs)
		switch {
		case err != nil:
			cl.finish(c, zero, 0, cl.fail(err))
			return true
		case ok:
			cl.finish(c, res, 0, nil)
			return true
		}
	} else {
		k := cl.corr
		res, level, final, err := k.f(cl.req, &cl.rs)
		if err != nil {
			cl.finish(c, zero, 0, cl.fail(err))
			return true
		}
		if final {
			cl.finish(c, res, max(level, k.level), nil)
			return true
		}
		if level > k.level {
			k.level, k.best = level, res
			if k.onLevel != nil {
				k.onLevel(c, res, level)
			}
		}
	}
	if cl.rs.pending == 0 {
		if k := cl.corr; k != nil && k.level > 0 {
			cl.finish(c, k.best, k.level, nil)
		} else {
			cl.finish(c, zero, 0, cl.fail(ErrIncomplete))
		}
		return true
	}
	return false
}

func (cl *call[Req, Rep, Res]) fail(cause error) error {
	return &Error{Config: cl.rs.cfg.id, Asked: cl.rs.asked, Replies: len(cl.rs.ok),
		Failures: slices.Clone(cl.rs.failed), Cause: cause}
}

// finish settles the call once.
func (cl *call[Req, Rep, Res]) finish(c *actor.Context, res Res, level int, err error) {
	if cl.done {
		return
	}
	cl.done = true
	cl.timer.Cancel()
	for i := range cl.asks {
		if d := cl.asks[i].def; d != nil {
			cl.asks[i].def = nil
			cl.rs.cfg.m.defer_.drop(d)
		}
	}
	if !cl.promise.IsZero() {
		if err != nil {
			promises.Resolve(cl.promise, nil, err)
		} else {
			promises.Resolve(cl.promise, res, nil)
		}
		return
	}
	cl.onDone(c, res, level, err)
}

// recoverPanic turns a panic of the user's functions, in a Caller's actor,
// into the call's failure.
func (cl *call[Req, Rep, Res]) recoverPanic(c *actor.Context) {
	if v := recover(); v != nil {
		var zero Res
		cl.finish(c, zero, 0, cl.fail(fmt.Errorf("%w: %v\n%s", ErrPanic, v, debug.Stack())))
	}
}

// promises makes and settles Ask's promises without a closure each (the
// actor package's promise seam).
var promises = seam.Promises().(interface {
	New(c *actor.Context) actor.Promise
	Resolve(p actor.Promise, v any, err error)
	Then(p actor.Promise, k seam.Cont[*actor.Context], arg int)
	AfterFunc(c *actor.Context, d time.Duration, k seam.Cont[*actor.Context], arg int) actor.Timer
})

// Future is the pending result of a quorum call made by an actor (Ask): a
// typed actor.Promise.
type Future[Res any] struct{ p actor.Promise }

// Then attaches f as the call's continuation, with the rules of
// actor.Promise.Then: from the actor that made the call, in the turn that
// made it; f runs later inside that actor with the result, or the zero Res
// and an error (an *Error matching ErrNoQuorum, or ErrBadSpec).
func (f Future[Res]) Then(fn func(c *actor.Context, res Res, err error)) {
	promises.Then(f.p, typedCont[Res](fn), 0)
}

// typedCont is a Future's continuation as the promise seam runs it: a func
// fits an interface without a box, so Then allocates nothing of its own.
type typedCont[Res any] func(c *actor.Context, res Res, err error)

// Continue runs f with the call's result as a Res (the zero Res with an
// error).
func (f typedCont[Res]) Continue(c *actor.Context, _ int, v any, err error) {
	r, _ := v.(Res)
	f(c, r, err)
}

// Promise returns the underlying promise (its value is a Res), to combine
// calls with actor.Context.All or First.
func (f Future[Res]) Promise() actor.Promise { return f.p }

// Ask makes a quorum call from the running actor: it asks every node of
// cfg req (or what spec.PerNode makes of it), in the configuration's order,
// and settles the returned Future as spec.Quorum decides (see QuorumFunc),
// or with an *Error matching ErrNoQuorum. The loop never blocks: the
// replies are counted in continuations of this actor.
//
// Calls made one after the other by one actor reach each node in the order
// they were made (thrifty calls included: see Spec.Thrifty).
func Ask[Req, Rep, Res any](c *actor.Context, cfg Configuration, req Req, spec Spec[Req, Rep, Res]) Future[Res] {
	p := promises.New(c) // Context.Promise without its resolve closure
	cl, err := newCall[Req, Rep, Res](cfg, req, options[Req]{spec.PerNode, spec.Timeout, spec.Thrifty, spec.Kind})
	if err == nil && spec.Quorum == nil {
		err = fmt.Errorf("%w: no quorum function", ErrBadSpec)
	}
	if err != nil {
		promises.Resolve(p, nil, err)
		return Future[Res]{p}
	}
	cl.qf, cl.promise = spec.Quorum, p
	cl.start(c)
	return Future[Res]{p}
}

// AskCorrectable makes a correctable call from the running actor: like
// Ask, but f receives an Update each time the result's level rises, and a
// last one (Final) when the call settles. f runs inside this actor, never
// during AskCorrectable itself.
func AskCorrectable[Req, Rep, Res any](c *actor.Context, cfg Configuration, req Req, spec CorrectableSpec[Req, Rep, Res], f func(c *actor.Context, u Update[Res])) {
	cl, err := newCall[Req, Rep, Res](cfg, req, options[Req]{spec.PerNode, spec.Timeout, spec.Thrifty, spec.Kind})
	if err == nil && spec.Levels == nil {
		err = fmt.Errorf("%w: no correctable function", ErrBadSpec)
	}
	// Updates made while AskCorrectable runs are delivered in a later
	// turn, as a promise's continuation.
	starting := true
	later := func(c *actor.Context, u Update[Res]) {
		p, resolve := c.Promise()
		resolve(nil, nil)
		p.Then(func(c *actor.Context, _ any, _ error) { f(c, u) })
	}
	if err != nil {
		later(c, Update[Res]{Final: true, Err: err})
		return
	}
	cl.corr = &correctable[Req, Rep, Res]{f: spec.Levels, onLevel: func(c *actor.Context, res Res, level int) {
		u := Update[Res]{Value: res, Level: level}
		if starting {
			later(c, u)
			return
		}
		f(c, u)
	}}
	cl.onDone = func(c *actor.Context, res Res, level int, err error) {
		u := Update[Res]{Value: res, Level: level, Final: true, Err: err}
		if starting {
			later(c, u)
			return
		}
		f(c, u)
	}
	cl.start(c)
	starting = false
}

// Multicast sends msg (or what perNode, if not nil, makes of it for each
// node; false skips the node) one way to every node of cfg, from the
// running actor, in the configuration's order. It returns the errors of the
// sends that failed (a full queue, a node known down), joined; a message
// accepted may still be lost with its connection (see actor.Context.Send).
// Messages reach each node after the requests of this actor's earlier calls.
func Multicast[Req any](c *actor.Context, cfg Configuration, msg Req, perNode func(req Req, n *Node) (Req, bool)) error {
	if cfg.m == nil {
		return fmt.Errorf("%w: the zero Configuration", ErrBadSpec)
	}
	var errs []error
	for _, n := range cfg.nodes {
		m := msg
		if perNode != nil {
			var ok bool
			if m, ok = perNode(msg, n); !ok {
				continue
			}
		}
		cfg.m.defer_.flush(c, c.Self(), n.id, nil)
		if err := c.Send(n.ref, m); err != nil {
			errs = append(errs, fmt.Errorf("quorum: multicast to %v: %w", n.ref, err))
		}
	}
	return errors.Join(errs...)
}
