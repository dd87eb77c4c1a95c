// Command hello is actord's first demo: it starts a loop group, spawns a
// word-counting actor on every loop, and has a coordinator fan a text out to
// them with asks, reduce the answers with a promise combinator, keep a
// synchronous tally in a child on its own loop, run a blocking job off the
// loop, survive a crashing actor, and print what each did.
//
//	go run ./examples/hello
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/actord/actord/actor"
)

// countWords asks a counter to count the words of one line.
type countWords struct{ line string }

// counter counts words; it lives on one loop and remembers how much it did.
type counter struct{ lines, words int }

func (c *counter) Receive(ctx *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case countWords:
		if strings.Contains(m.line, "PANIC") {
			panic("counter cannot stand shouting")
		}
		counts := map[string]int{}
		for _, w := range strings.Fields(strings.ToLower(m.line)) {
			counts[strings.Trim(w, ".,;:!?")]++
		}
		c.lines++
		c.words += len(strings.Fields(m.line))
		return counts, nil
	case string: // "report"
		return fmt.Sprintf("counter %v on loop %d: %d lines, %d words", ctx.Self(), ctx.Loop(), c.lines, c.words), nil
	}
	return nil, actor.Unhandled(msg)
}

// tally is the coordinator's child on the same loop: the coordinator updates
// it with synchronous calls, like a function call.
type tally struct{ total map[string]int }

func (t *tally) Receive(ctx *actor.Context, msg any) (any, error) {
	if m, ok := msg.(map[string]int); ok {
		for w, n := range m {
			t.total[w] += n
		}
		return len(t.total), nil
	}
	return t.total, nil
}

// process asks the coordinator to count the words of a text.
type process struct{ lines []string }

// coordinator fans lines out to the counters and reduces the answers.
type coordinator struct {
	counters []actor.Ref
	tally    actor.Ref
	log      []string
}

func (c *coordinator) Start(ctx *actor.Context) error {
	t, err := ctx.Spawn(func() actor.Actor { return &tally{total: map[string]int{}} }, actor.Name("tally"))
	c.tally = t
	return err
}

func (c *coordinator) Receive(ctx *actor.Context, msg any) (any, error) {
	m, ok := msg.(process)
	if !ok {
		return nil, actor.Unhandled(msg)
	}
	reply := ctx.Defer() // answer once every counter has
	asks := make([]actor.Promise, len(m.lines))
	for i, line := range m.lines {
		asks[i] = ctx.AskTimeout(c.counters[i%len(c.counters)], countWords{line}, time.Second)
	}
	// Each line separately, to show a crash reaching the asker as an error;
	// each settles a promise of its own that never fails, for the reduce.
	done := make([]actor.Promise, 0, len(asks)+1)
	for i, p := range asks {
		lineDone, resolve := ctx.Promise()
		done = append(done, lineDone)
		p.Then(func(ctx *actor.Context, v any, err error) {
			defer resolve(nil, nil)
			if err != nil {
				c.log = append(c.log, fmt.Sprintf("line %d failed: %v (crashed: %v)", i, err, errors.Is(err, actor.ErrCrashed)))
				return
			}
			n, _ := ctx.Call(c.tally, v.(map[string]int)) // same loop: synchronous
			c.log = append(c.log, fmt.Sprintf("line %d counted; tally has %d distinct words", i, n))
		})
	}
	// A blocking job (pretend it is a disk write) runs off the loop.
	save := ctx.Blocking(func() (any, error) {
		return fmt.Sprintf("saved %d lines", len(m.lines)), nil
	})
	done = append(done, save)
	ctx.All(done...).Then(func(ctx *actor.Context, v any, err error) {
		all, _ := v.([]any)
		c.log = append(c.log, fmt.Sprintf("blocking job: %v (err %v)", all[len(all)-1], err))
		total, _ := ctx.Call(c.tally, "total")
		reply.Reply(struct {
			Log   []string
			Total map[string]int
		}{c.log, total.(map[string]int)}, nil)
	})
	return nil, nil
}

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

// run is the demo; it writes what the actors did to out.
func run(out io.Writer) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := actor.NewSystem(actor.Config{
		Logger: logger,
		OnCrash: func(cr *actor.Crash) {
			fmt.Fprintf(out, "crash report: actor %v (%s) on loop %d panicked with %q while handling %T\n",
				cr.Actor, cr.Name, cr.Loop, cr.Value, cr.Msg)
		},
	})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sys.Shutdown(ctx); err != nil {
			fmt.Fprintln(out, "shutdown:", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	fmt.Fprintf(out, "actord hello: %d loops\n", sys.Loops())
	var counters []actor.Ref
	for i := range 2 * sys.Loops() {
		r, err := sys.Spawn(ctx, func() actor.Actor { return &counter{} }, actor.OnLoop(i), actor.Name(fmt.Sprint("counter-", i)))
		if err != nil {
			return fmt.Errorf("spawn: %w", err)
		}
		counters = append(counters, r)
	}
	coord, err := sys.Spawn(ctx, func() actor.Actor { return &coordinator{counters: counters} }, actor.OnLoop(0), actor.Name("coordinator"))
	if err != nil {
		return fmt.Errorf("spawn: %w", err)
	}
	text := []string{
		"The loop runs one actor at a time, to completion.",
		"An actor on another loop is reached with an ask and a continuation.",
		"PANIC: a crash is contained, reported, and the loop keeps running.",
		"Blocking work runs on a worker pool, off the loop.",
		"The loop runs on; the actors keep their state.",
	}
	v, err := sys.Ask(ctx, coord, process{lines: text})
	if err != nil {
		return fmt.Errorf("ask: %w", err)
	}
	res := v.(struct {
		Log   []string
		Total map[string]int
	})
	for _, l := range res.Log {
		fmt.Fprintln(out, " ", l)
	}
	words := make([]string, 0, len(res.Total))
	for w := range res.Total {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if res.Total[words[i]] != res.Total[words[j]] {
			return res.Total[words[i]] > res.Total[words[j]]
		}
		return words[i] < words[j]
	})
	fmt.Fprintf(out, "top words: ")
	for _, w := range words[:5] {
		fmt.Fprintf(out, "%s=%d ", w, res.Total[w])
	}
	fmt.Fprintln(out)
	for _, r := range counters {
		rep, err := sys.Ask(ctx, r, "report")
		if err != nil {
			fmt.Fprintf(out, "counter %v: %v\n", r, err)
			continue
		}
		fmt.Fprintln(out, rep)
	}
	for _, st := range sys.Stats() {
		fmt.Fprintf(out, "loop %d: %d actors, %d events handled\n", st.Loop, st.Actors, st.Handled)
	}
	return nil
}
