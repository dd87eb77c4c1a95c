package quorum

import (
	"errors"
	"fmt"
)

// Reply is one node's successful reply.
type Reply[Rep any] struct {
	Node  *Node
	Value Rep
}

// Failure is one node's failed ask: an error reply, a timeout, a dead
// actor, a node down, a reply of the wrong type (ErrBadReply).
type Failure struct {
	Node *Node
	Err  error
}

// Replies is what a call has received so far: the quorum function reads it
// after every reply and every failure. It belongs to the call; a quorum
// function must not keep it, or the slices it returns, past its return,
// except in the result it settles with (nothing is added after that).
type Replies[Rep any] struct {
	cfg     Configuration
	ok      []Reply[Rep]
	failed  []Failure
	okSet   NodeSet // positions that replied
	live    NodeSet // positions neither failed nor skipped
	asked   int     // nodes the call asks, now or later (skipped ones excluded)
	pending int     // of asked: neither replied nor failed yet
}

// Config returns the configuration of the call.
func (r *Replies[Rep]) Config() Configuration { return r.cfg }

// Len returns the number of successful replies.
func (r *Replies[Rep]) Len() int { return len(r.ok) }

// Values returns the successful replies, in the order they arrived.
func (r *Replies[Rep]) Values() []Reply[Rep] { return r.ok }

// Failures returns the failed asks, in the order they failed.
func (r *Replies[Rep]) Failures() []Failure { return r.failed }

// Asked returns how many nodes the call asks: the configuration's size
// less the nodes its Spec.PerNode skipped. (A thrifty call counts the
// nodes it has not asked yet but will if it needs them.)
func (r *Replies[Rep]) Asked() int { return r.asked }

// Pending returns how many of the asked nodes have neither replied nor
// failed yet.
func (r *Replies[Rep]) Pending() int { return r.pending }

// Replied returns the positions (in the configuration) of the nodes that
// replied.
func (r *Replies[Rep]) Replied() NodeSet { return r.okSet }

// IsQuorum reports whether the nodes that replied form a quorum of kind k
// in the configuration's quorum system.
func (r *Replies[Rep]) IsQuorum(k Kind) bool { return r.cfg.IsQuorum(k, r.okSet) }

// Reachable reports whether a quorum of kind k can still reply: whether
// the nodes that have neither failed nor been skipped form one.
func (r *Replies[Rep]) Reachable(k Kind) bool { return r.cfg.IsQuorum(k, r.live) }

// QuorumFunc decides when a call has enough replies and what it returns.
// It is called with the request after every reply and every failure (and
// once before the first, with none), on the loop of the calling actor (or
// of the Caller): it needs no lock, and must not block. It returns:
//
//   - (result, true, nil) to settle the call with result; later replies
//     are ignored;
//   - (_, false, nil) to wait for more;
//   - (_, _, err) to fail the call at once (with an *Error whose Cause is
//     err), e.g. when the replies left cannot make a quorum any more.
//
// A call whose asks have all replied or failed without the function
// settling fails with Cause ErrIncomplete.
type QuorumFunc[Req, Rep, Res any] func(req Req, replies *Replies[Rep]) (res Res, done bool, err error)

// CorrectableFunc is the quorum function of a correctable call: it returns
// the best result the replies so far give and its level (higher is
// better; 0 means no result yet), and whether the result is final. The
// call reports a result each time its level rises, and settles when it is
// final, when the function fails, or when no ask is left (with the best
// result so far if its level is above 0, else ErrIncomplete).
type CorrectableFunc[Req, Rep, Res any] func(req Req, replies *Replies[Rep]) (res Res, level int, final bool, err error)

// Errors the built-in quorum functions fail with (as the Cause of an
// *Error).
var (
	// ErrUnreachable means the nodes that have neither failed nor been
	// skipped can no longer give what the quorum function needs.
	ErrUnreachable = errors.New("quorum: the nodes left cannot form a quorum")
	// ErrIncomplete means every ask of the call replied or failed and the
	// quorum function still did not settle.
	ErrIncomplete = errors.New("quorum: every node answered and the quorum function did not settle")
	// ErrBadReply means a node replied with a value that is not of the
	// call's reply type. It counts as that node's failure.
	ErrBadReply = errors.New("quorum: reply of an unexpected type")
)

// Count settles with the first k replies, in arrival order, and fails with
// ErrUnreachable as soon as k replies can no longer come. It ignores the
// configuration's quorum system.
func Count[Req, Rep any](k int) QuorumFunc[Req, Rep, []Reply[Rep]] {
	return func(_ Req, rs *Replies[Rep]) ([]Reply[Rep], bool, error) {
		switch {
		case len(rs.ok) >= k:
			return rs.ok[:max(k, 0)], true, nil
		case len(rs.ok)+rs.pending < k:
			return nil, false, fmt.Errorf("%w: %d replies needed, %d came, %d pending", ErrUnreachable, k, len(rs.ok), rs.pending)
		}
		return nil, false, nil
	}
}

// All settles with the replies of every asked node once they are all in,
// and fails with ErrUnreachable at the first failure.
func All[Req, Rep any]() QuorumFunc[Req, Rep, []Reply[Rep]] {
	return func(_ Req, rs *Replies[Rep]) ([]Reply[Rep], bool, error) {
		switch {
		case len(rs.failed) > 0:
			return nil, false, fmt.Errorf("%w: every node needed, %d failed", ErrUnreachable, len(rs.failed))
		case len(rs.ok) == rs.asked:
			return rs.ok, true, nil
		}
		return nil, false, nil
	}
}

// Quorum settles once the nodes that replied form a quorum of kind k in
// the configuration's system, with what combine makes of the request and
// those replies (an error from combine fails the call), and fails with
// ErrUnreachable as soon as no quorum can reply any more.
func Quorum[Req, Rep, Res any](k Kind, combine func(req Req, replies []Reply[Rep]) (Res, error)) QuorumFunc[Req, Rep, Res] {
	return func(req Req, rs *Replies[Rep]) (Res, bool, error) {
		var zero Res
		if rs.IsQuorum(k) {
			res, err := combine(req, rs.ok)
			if err != nil {
				return zero, false, err
			}
			return res, true, nil
		}
		if !rs.Reachable(k) {
			return zero, false, fmt.Errorf("%w: no %s quorum of %s among the %d nodes left", ErrUnreachable, k, rs.cfg.sys, rs.live.Len())
		}
		return zero, false, nil
	}
}

// Collect is Quorum returning the replies of the quorum themselves.
func Collect[Req, Rep any](k Kind) QuorumFunc[Req, Rep, []Reply[Rep]] {
	return Quorum(k, func(_ Req, rs []Reply[Rep]) ([]Reply[Rep], error) { return rs, nil })
}

// Highest is Quorum returning the greatest reply of the quorum by less
// (the newest version, say); the first to arrive among equals.
func Highest[Req, Rep any](k Kind, less func(a, b Rep) bool) QuorumFunc[Req, Rep, Rep] {
	return Quorum(k, func(_ Req, rs []Reply[Rep]) (Rep, error) {
		best := rs[0].Value
		for _, r := range rs[1:] {
			if less(best, r.Value) {
				best = r.Value
			}
		}
		return best, nil
	})
}

// Matching settles once the nodes that replied form a quorum of kind k and
// need of the replies are equal by key, with the first of those replies.
// It fails with ErrUnreachable when neither can happen any more. In a
// Byzantine(f) configuration, need = f+1 makes the result one that an
// honest node gave.
func Matching[Req, Rep any, K comparable](k Kind, need int, key func(Rep) K) QuorumFunc[Req, Rep, Rep] {
	return func(_ Req, rs *Replies[Rep]) (Rep, bool, error) {
		var zero Rep
		best, n := matches(rs.ok, key)
		if n >= need && rs.IsQuorum(k) {
			return best, true, nil
		}
		if n+rs.pending < need || !rs.Reachable(k) {
			return zero, false, fmt.Errorf("%w: %d matching replies needed in a %s quorum; %d match, %d pending", ErrUnreachable, need, k, n, rs.pending)
		}
		return zero, false, nil
	}
}

// MatchingLevels is a CorrectableFunc: its result is the reply that most
// replies match (by key), its level how many match, final once final of
// them do.
func MatchingLevels[Req, Rep any, K comparable](final int, key func(Rep) K) CorrectableFunc[Req, Rep, Rep] {
	return func(_ Req, rs *Replies[Rep]) (Rep, int, bool, error) {
		best, n := matches(rs.ok, key)
		return best, n, n >= final, nil
	}
}

// matches returns the first reply of the largest group of replies equal
// by key (the group complete first on ties) and the group's size.
func matches[Rep any, K comparable](rs []Reply[Rep], key func(Rep) K) (Rep, int) {
	type group struct{ n, first int }
	var best Rep
	bestN := 0
	groups := make(map[K]group, len(rs))
	for i, r := range rs {
		k := key(r.Value)
		g, ok := groups[k]
		if !ok {
			g.first = i
		}
		g.n++
		groups[k] = g
		if g.n > bestN {
			best, bestN = rs[g.first].Value, g.n
		}
	}
	return best, bestN
}
