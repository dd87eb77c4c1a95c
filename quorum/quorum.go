package quorum

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/actord/actord/actor"
)

// ErrNoQuorum means a quorum call could not get the successful replies it
// needed: too many of its asks failed (or need exceeded the number of
// actors asked). The *Error that matches it tells what each failed ask got.
var ErrNoQuorum = errors.New("quorum: not enough successful replies")

// Result is one actor's successful reply.
type Result struct {
	From  actor.Ref // the actor asked (as given to Ask, duplicates included)
	Value any       // its reply
}

// Failure is one actor's failed ask.
type Failure struct {
	From actor.Ref
	Err  error
}

// Error is the failure of a quorum call. It matches ErrNoQuorum with
// errors.Is, and every error its failed asks got (errors.Is(err,
// actor.ErrTimeout) tells whether any timed out).
type Error struct {
	Need      int       // successes needed
	Asked     int       // actors asked
	Succeeded []Result  // the successes that came before the call failed
	Failed    []Failure // the failures, in the order they came
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("quorum: %d of %d needed, %d succeeded, %d failed", e.Need, e.Asked, len(e.Succeeded), len(e.Failed))
	if len(e.Failed) > 0 {
		msg += " (first: " + e.Failed[0].Err.Error() + ")"
	}
	return msg
}

// Is reports whether target is ErrNoQuorum.
func (e *Error) Is(target error) bool { return target == ErrNoQuorum }

// Unwrap returns the errors of the failed asks.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		errs[i] = f.Err
	}
	return errs
}

// Majority returns the smallest number of n that is more than half of it.
func Majority(n int) int { return n/2 + 1 }

// tally counts replies toward a quorum. It is not safe for concurrent use.
type tally struct {
	need, asked int
	ok          []Result
	failed      []Failure
	done        bool
}

func newTally(need, asked int) *tally {
	return &tally{need: need, asked: asked, ok: make([]Result, 0, need)}
}

// settled reports the outcome if this call settles it: the first need
// successes, or the failure once need successes can no longer come.
func (t *tally) add(from actor.Ref, v any, err error) (res []Result, ferr error, settled bool) {
	if t.done {
		return nil, nil, false
	}
	if err != nil {
		t.failed = append(t.failed, Failure{From: from, Err: err})
		if t.asked-len(t.failed) < t.need {
			t.done = true
			return nil, t.fail(), true
		}
		return nil, nil, false
	}
	t.ok = append(t.ok, Result{From: from, Value: v})
	if len(t.ok) == t.need {
		t.done = true
		return t.ok, nil, true
	}
	return nil, nil, false
}

func (t *tally) fail() error {
	return &Error{Need: t.need, Asked: t.asked, Succeeded: t.ok, Failed: t.failed}
}

// check settles a call that needs no ask at all: need <= 0 succeeds at
// once with no results; need above len(refs) fails at once.
func (t *tally) check() (res []Result, err error, settled bool) {
	switch {
	case t.need <= 0:
		t.done = true
		return []Result{}, nil, true
	case t.need > t.asked:
		t.done = true
		return nil, t.fail(), true
	}
	return nil, nil, false
}

// Ask asks each of refs msg from the running actor, each ask with deadline
// d (d <= 0: none, so a silent actor can hold the call forever), and
// returns a promise that settles with a []Result of the first need
// successful replies, in arrival order, as soon as there are need of them.
// It fails with an *Error matching ErrNoQuorum as soon as more than
// len(refs)-need asks have failed (a dead actor, a crash, a timeout, a
// node down: whatever the ask got), or at once when need > len(refs). With
// need <= 0 it succeeds at once with no results and asks nobody. Replies
// after the promise settled are ignored. Like every promise, it belongs to
// the running actor: attach its continuation from this actor.
func Ask(c *actor.Context, refs []actor.Ref, msg any, need int, d time.Duration) actor.Promise {
	out, resolve := c.Promise()
	t := newTally(need, len(refs))
	if res, err, ok := t.check(); ok {
		resolve(settledValue(res, err))
		return out
	}
	for _, r := range refs {
		from := r
		c.AskTimeout(r, msg, d).Then(func(_ *actor.Context, v any, err error) {
			if res, ferr, ok := t.add(from, v, err); ok {
				resolve(settledValue(res, ferr))
			}
		})
	}
	return out
}

// settledValue turns an outcome into a promise's (value, error): a nil
// []Result is not boxed as a non-nil value.
func settledValue(res []Result, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return res, nil
}

// Wait is Ask for a plain goroutine (not an actor's handler: it blocks):
// it asks each of refs through sys, every ask bounded by ctx, and returns
// as soon as need have succeeded or need can no longer succeed. The asks
// still in flight when it returns are cancelled.
func Wait(ctx context.Context, sys *actor.System, refs []actor.Ref, msg any, need int) ([]Result, error) {
	t := newTally(need, len(refs))
	if res, err, ok := t.check(); ok {
		return res, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type reply struct {
		from actor.Ref
		v    any
		err  error
	}
	replies := make(chan reply, len(refs)) // buffered: late askers never block
	for _, r := range refs {
		go func() {
			v, err := sys.Ask(ctx, r, msg)
			replies <- reply{r, v, err}
		}()
	}
	for range refs {
		rp := <-replies
		if res, err, ok := t.add(rp.from, rp.v, rp.err); ok {
			return res, err
		}
	}
	panic("quorum: unreachable: every reply counted without an outcome")
}
