// Package capability attenuates and revokes actor references.
//
// In actord a [actor.Ref] is authority: whoever holds one may message the
// actor it names, in process (refs cannot be forged) and across nodes (a
// remote ref carries a 128-bit secret that the hosting node checks). This
// package adds the two classic operations of object-capability systems on
// top of that:
//
//   - Attenuation. [New] and [Spawn] make a facet: a small proxy actor that
//     forwards to a target only the messages its rules admit ([Allow],
//     [AllowIf]). Its ref is an ordinary Ref, so it can be given away in a
//     message, used from any loop, and sent to other nodes, like any other.
//     A message the rules do not admit is answered with an error matching
//     [ErrNotPermitted] and never reaches the target.
//   - Revocation. The grantor keeps the [Facet] handle. After
//     [Facet.Revoke] the facet's ref behaves exactly like a dead actor's:
//     asks fail with [actor.ErrDead], sends are dropped, monitors get Down.
//     Because the facet is then really stopped, the same holds for holders on
//     other nodes: the hosting node answers a stopped actor's ref as dead.
//
// Facets compose: a facet of a facet admits only what both admit, and
// revoking (or the death of) any link in the chain kills every facet built on
// it. A facet dies with its target (it monitors it), so facets do not outlive
// what they guard.
//
// # Forwarding
//
// By default a facet forwards each admitted message with an ask and answers
// its own asker later ([actor.Context.Defer]): replies, errors (a
// [*actor.CrashError] included) and timeouts of the target come back
// unchanged, whatever loop or node the target is on, and targets that defer
// their own replies work. Messages a holder sends through one facet reach the
// target in the order sent. [Synchronous] makes a facet on its target's loop
// forward with [actor.Context.Call] instead: one hop fewer and no allocation
// per message, for targets that always answer in their handler. [Handoff]
// makes a facet hand each message on with [actor.Context.Forward]: one post
// and no allocation, the target answering the asker itself, at the price
// that a message handed on before a revocation still reaches the target.
//
// # What a facet does not hide
//
// The target sees the facet, not the original holder, as
// [actor.Context.Sender] (except with [Handoff]); a protocol that needs a
// reply address should carry one in its messages. Any holder of a ref may
// stop the actor it names ([actor.Context.Stop], Kill, Exit): a holder of a
// facet can therefore stop that facet (which cuts off the other holders of
// the same facet) but never its target. Give each party its own facet when that matters.
package capability
