// Package loop is the single-goroutine event loop that actord's actors run on.
//
// A [Loop] owns one goroutine (or none, when driven by hand with [Loop.Step])
// and everything that goroutine touches: a bounded multi-producer inbound
// queue for events from other goroutines, an unbounded control queue for
// events whose number is already bounded elsewhere (replies to pending asks,
// worker-pool completions, stop requests), a bounded local queue for events a
// loop posts to itself, and a min-heap of timers driven by the loop's [Clock].
//
// The package knows nothing about actors: it moves values of a type E from
// producers to a [Handler] on the loop goroutine. The actor package builds the
// programming model on top. Keeping the two apart lets the loop be tested
// deterministically: with a [FakeClock] and Step, the same inputs always give
// the same sequence of handled events.
//
// # Guarantees
//
//   - Events posted by one goroutine with [Loop.Post] are handled in the order
//     they were posted. The same holds for [Loop.PostControl] and
//     [Loop.PostLocal] separately; there is no order between the three queues.
//   - A post never blocks: a full inbound or local queue returns [ErrFull], a
//     closed loop returns [ErrClosed]. A loop therefore never waits on another
//     loop.
//   - An event accepted by a post is either handled or, after [Loop.Close],
//     handed to the drain function, so the layer above can fail it with a
//     signal instead of losing it.
//   - An idle loop parks on a channel and costs no CPU; the first post after it
//     parks wakes it, one wake per batch of posts.
//   - Handlers run on one goroutine at a time. With [Loop.PostRun] (or
//     [Loop.PostQuiet] then [Loop.Kick]) a poster that can afford it runs
//     an idle loop's pass itself instead of waking it, and with
//     [Loop.PostOwn] and [Loop.PostFrom] an asker runs the handler of its
//     own request; the loop's goroutine takes the loop back before it runs
//     again. "The loop goroutine" in this package's documentation means
//     whichever goroutine holds the loop. Loans do not nest. A lent
//     handler that panics faults the loop's own goroutine, in Run, not
//     the poster. One that calls runtime.Goexit ends the loop's goroutine
//     (in Run) and the poster's too, which nothing can prevent: a
//     PostOwn caller's goroutine exits, and a PostFrom asking loop's Run
//     panics with an error saying so rather than ending silently.
//   - A handler's panic leaves Run (on the loop's goroutine) unless the
//     handler is a [Recoverer] that claims it: the loop then recovers it,
//     has the handler finish the event, and goes on with the next event of
//     the same pass, in order. It keeps one recover frame per pass, not
//     per event.
package loop
