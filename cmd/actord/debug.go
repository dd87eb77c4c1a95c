package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/actord/actord/debug"
)

func init() {
	commands["debug"] = command{run: debugMain, summary: "attach to a running daemon: loops, actors, tree, state, events, crashes, follow, dump, patch, trace"}
}

// debugCmd is one `actord debug` subcommand.
type debugCmd struct {
	args    string // positional arguments, for the usage line
	summary string
	min     int // positional arguments required
	max     int
	flags   func(fs *flag.FlagSet, o *debugOpts)
	run     func(ctx context.Context, o *debugOpts, pos []string) error
}

// debugOpts are the flags of every debug subcommand.
type debugOpts struct {
	addr, tokenFile string
	json            bool
	timeout         time.Duration
	stdout          io.Writer
	client          *debug.Client

	actor   string
	last    int
	loop    int
	kinds   string
	format  string
	history bool
}

var debugCmds = map[string]*debugCmd{
	"loops":  {summary: "per loop: queue depth, events/s, handler latency percentiles, crashes, restarts", run: debugLoops},
	"actors": {summary: "every actor: id, loop, type, name, supervisor, status, queue", run: debugActors},
	"tree":   {summary: "the supervision tree (--format dot for Graphviz)", run: debugTree, flags: func(fs *flag.FlagSet, o *debugOpts) { fs.StringVar(&o.format, "format", "text", "text or dot") }},
	"state": {args: "ACTOR", summary: "an actor's current state (--history: its recent states and diffs)", min: 1, max: 1, run: debugState, flags: func(fs *flag.FlagSet, o *debugOpts) {
		fs.BoolVar(&o.history, "history", false, "show recent states and their diffs")
	}},
	"events":  {summary: "recent events [--actor A] [--last N] [--loop L] [--kind K,...]", run: debugEvents, flags: eventFlags},
	"crashes": {summary: "the crash log: panic, stack, supervisor, messages before", run: debugCrashes},
	"follow":  {summary: "stream events as they happen (like tail -f) [--actor A] [--loop L] [--kind K,...]", run: debugFollow, flags: eventFlags},
	"dump": {summary: "everything, as JSON", run: debugDump, flags: func(fs *flag.FlagSet, o *debugOpts) {
		fs.IntVar(&o.last, "last", 0, "events per loop (default: the server's, 1000)")
	}},
	"patch": {args: "ACTOR JSON", summary: "replace an actor's state (as Erlang's sys:replace_state)", min: 2, max: 2, run: debugPatch},
	"trace": {args: "(ACTOR | --loop L) on|off", summary: "switch state tracing for an actor or a whole loop", min: 1, max: 2, run: debugTrace, flags: func(fs *flag.FlagSet, o *debugOpts) { fs.IntVar(&o.loop, "loop", -1, "a loop instead of an actor") }},
}

func eventFlags(fs *flag.FlagSet, o *debugOpts) {
	fs.StringVar(&o.actor, "actor", "", "only events to or from this actor (id or name)")
	fs.IntVar(&o.last, "last", 0, "the last N events (events: default 100; follow: replayed first)")
	fs.IntVar(&o.loop, "loop", -1, "only this loop")
	fs.StringVar(&o.kinds, "kind", "", "only these kinds, comma separated (send,ask,call,timer,continuation,spawn,stop,restart,crash,dropped,report,patch,trace)")
}

func defaultAddr() string {
	if a := os.Getenv("ACTORD_DEBUG_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6060"
}

// defaultTokenFile is where a daemon writes its debug token unless told
// otherwise: $ACTORD_DEBUG_TOKEN, else $XDG_RUNTIME_DIR/actord-debug.token,
// else ~/.actord/debug.token.
func defaultTokenFile() string {
	if f := os.Getenv("ACTORD_DEBUG_TOKEN"); f != "" {
		return f
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "actord-debug.token")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".actord", "debug.token")
	}
	return "actord-debug.token"
}

func debugUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord debug SUBCOMMAND [flags] [args]\n\nsubcommands:")
	for _, n := range []string{"loops", "actors", "tree", "state", "events", "crashes", "follow", "dump", "patch", "trace"} {
		c := debugCmds[n]
		fmt.Fprintf(w, "  %-8s %-26s %s\n", n, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nflags of every subcommand:\n  --addr HOST:PORT   debug server (default $ACTORD_DEBUG_ADDR or 127.0.0.1:6060)\n  --token-file PATH  access token file (default $ACTORD_DEBUG_TOKEN, $XDG_RUNTIME_DIR/actord-debug.token or ~/.actord/debug.token)\n  --json             machine-readable output\n  --timeout D        request timeout (default 10s)")
}

func debugMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		debugUsage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		debugUsage(stdout)
		return 0
	}
	c, ok := debugCmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "actord debug: unknown subcommand %q (try: actord debug help)\n", args[0])
		return 2
	}
	o := &debugOpts{stdout: stdout, loop: -1}
	fs := flag.NewFlagSet("actord debug "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", defaultAddr(), "")
	fs.StringVar(&o.tokenFile, "token-file", defaultTokenFile(), "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "")
	if c.flags != nil {
		c.flags(fs, o)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: actord debug %s [flags] %s\n  %s\n", args[0], c.args, c.summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
		return 2
	}
	if len(pos) < c.min || len(pos) > c.max {
		fmt.Fprintf(stderr, "actord debug %s: want arguments %q, got %d (usage: actord debug %s %s)\n", args[0], c.args, len(pos), args[0], c.args)
		return 2
	}
	if o.format != "" && o.format != "text" && o.format != "dot" {
		fmt.Fprintf(stderr, "actord debug %s: --format must be text or dot, not %q\n", args[0], o.format)
		return 2
	}
	cl, err := debug.NewClient(o.addr, o.tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
		return 1
	}
	o.client = cl
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if args[0] != "follow" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if err := c.run(ctx, o, pos); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
			return 2
		}
		fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

var errUsage = errors.New("usage")

// parseInterleaved parses flags that may come before, between or after the
// positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtDur(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d == 0:
		return "0"
	case d < time.Microsecond:
		return strconv.FormatInt(ns, 10) + "ns"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(ns)/1e3, 'f', 1, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(ns)/1e6, 'f', 1, 64) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

func debugLoops(ctx context.Context, o *debugOpts, _ []string) error {
	loops, err := o.client.Loops(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, loops)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LOOP\tQUEUE\tACTORS\tEVENTS/S\tHANDLED\tP50\tP90\tP99\tMAX\tERRORS\tCRASHES\tRESTARTS\tTRACE")
	for _, l := range loops {
		trace := "-"
		if l.TraceState {
			trace = "all"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\n", l.Loop, l.QueueDepth, l.Actors, l.EventsPerSec,
			l.Handled, fmtDur(l.Latency.P50NS), fmtDur(l.Latency.P90NS), fmtDur(l.Latency.P99NS), fmtDur(l.Latency.MaxNS),
			l.Errors, l.Crashes, l.Restarts, trace)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func debugActors(ctx context.Context, o *debugOpts, _ []string) error {
	r, err := o.client.Actors(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOOP\tTYPE\tNAME\tSUPERVISOR\tSTATUS\tQUEUE\tSTATE")
	for _, a := range r.Actors {
		state := "-"
		switch {
		case a.Traced:
			state = "traced"
		case a.HasState:
			state = "yes"
		}
		if a.Patchable {
			state += ",patchable"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", a.ID, a.Loop, orDash(a.Type), orDash(a.Path), orDash(a.Supervisor), a.Status, a.Queue, state)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return unresponsive(o.stdout, r.Unresponsive)
}

func unresponsive(w io.Writer, loops []int) error {
	if len(loops) > 0 {
		_, err := fmt.Fprintf(w, "loops not answering (stuck in a handler?): %v\n", loops)
		return err
	}
	return nil
}

func debugTree(ctx context.Context, o *debugOpts, _ []string) error {
	if o.format != "text" && o.format != "dot" {
		return fmt.Errorf("%w: --format must be text or dot, not %q", errUsage, o.format)
	}
	r, err := o.client.Tree(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	if o.format == "dot" {
		return writeDot(o.stdout, r.Tree)
	}
	var walk func(n *debug.Node, prefix string, last, root bool)
	walk = func(n *debug.Node, prefix string, last, root bool) {
		branch, next := "├── ", "│   "
		if last {
			branch, next = "└── ", "    "
		}
		if root {
			branch, next = "", ""
		}
		kind := ""
		if n.IsSupervisor {
			kind = " [supervisor]"
		}
		status := ""
		if n.Status != "running" {
			status = " (" + n.Status + ")"
		}
		fmt.Fprintf(o.stdout, "%s%s%s %s loop %d %s%s%s\n", prefix, branch, orDash(n.Path), n.ID, n.Loop, orDash(n.Type), kind, status)
		for i, c := range n.Children {
			walk(c, prefix+next, i == len(n.Children)-1, false)
		}
	}
	for _, n := range r.Tree {
		walk(n, "", true, true)
	}
	return unresponsive(o.stdout, r.Unresponsive)
}

func writeDot(w io.Writer, roots []*debug.Node) error {
	var b bytes.Buffer
	b.WriteString("digraph actord {\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n")
	var walk func(n *debug.Node)
	walk = func(n *debug.Node) {
		shape := "box"
		if n.IsSupervisor {
			shape = "box3d"
		}
		style := ""
		if n.Status != "running" {
			style = ", style=dashed"
		}
		fmt.Fprintf(&b, "  %q [label=%q, shape=%s%s];\n", n.ID, fmt.Sprintf("%s\n%s loop %d\n%s", orDash(n.Path), n.ID, n.Loop, orDash(n.Type)), shape, style)
		for _, c := range n.Children {
			fmt.Fprintf(&b, "  %q -> %q;\n", n.ID, c.ID)
			walk(c)
		}
	}
	for _, n := range roots {
		walk(n)
	}
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

func indentJSON(raw []byte, prefix string) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, prefix, "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func debugState(ctx context.Context, o *debugOpts, pos []string) error {
	st, err := o.client.State(ctx, pos[0])
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, st)
	}
	traced := "off"
	if st.Traced {
		traced = "on"
	}
	fmt.Fprintf(o.stdout, "%s %s %s (state tracing %s)\n%s\n", st.Actor, orDash(st.Name), st.Type, traced, indentJSON(st.State, ""))
	if o.history {
		if len(st.History) == 0 {
			fmt.Fprintln(o.stdout, "no recent states (turn tracing on: actord debug trace ACTOR on)")
		}
		for i := len(st.History) - 1; i >= 0; i-- {
			h := st.History[i]
			fmt.Fprintf(o.stdout, "\n[-%d] after event n=%d at %s\n  state: %s\n  diff:  %s\n", len(st.History)-1-i, h.N, h.Time, compactJSON(h.State), compactJSON(h.Patch))
		}
	}
	return nil
}

func (o *debugOpts) query() debug.EventQuery {
	q := debug.EventQuery{Actor: o.actor, Loop: o.loop, Last: o.last}
	if o.kinds != "" {
		q.Kinds = strings.Split(o.kinds, ",")
	}
	return q
}

func shortTime(t string) string {
	if i := strings.IndexByte(t, 'T'); i >= 0 {
		t = t[i+1:]
	}
	return strings.TrimSuffix(t, "Z")
}

func eventLine(e debug.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s L%d #%d %-12s %s -> %s", shortTime(e.Time), e.Loop, e.N, e.Kind, orDash(e.From), orDash(e.To))
	if e.Type != "" {
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Payload != "" {
		p := e.Payload
		if e.PayloadTruncated {
			p += "…"
		}
		fmt.Fprintf(&b, " %s", p)
	}
	if e.DurationNS > 0 {
		fmt.Fprintf(&b, " %s", fmtDur(e.DurationNS))
	}
	if e.Outcome != "ok" {
		fmt.Fprintf(&b, " %s", strings.ToUpper(e.Outcome))
	}
	if e.Error != "" {
		fmt.Fprintf(&b, " (%s)", e.Error)
	}
	if e.Operator {
		b.WriteString(" [operator]")
	}
	if len(e.Diff) > 0 {
		fmt.Fprintf(&b, "\n      diff %s", compactJSON(e.Diff))
	}
	return b.String()
}

func debugEvents(ctx context.Context, o *debugOpts, _ []string) error {
	ev, err := o.client.Events(ctx, o.query())
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, ev)
	}
	for _, e := range ev {
		fmt.Fprintln(o.stdout, eventLine(e))
	}
	return nil
}

func debugCrashes(ctx context.Context, o *debugOpts, _ []string) error {
	r, err := o.client.Crashes(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	fmt.Fprintf(o.stdout, "%d crashes since start, %d kept\n", r.Total, len(r.Crashes))
	for _, c := range r.Crashes {
		fmt.Fprintf(o.stdout, "\n== %s %s %s loop %d incarnation %d\n", shortTime(c.Time), c.Actor, orDash(c.Name), c.Loop, c.Incarnation)
		if c.Supervisor != "" {
			fmt.Fprintf(o.stdout, "   supervisor %s (child %s, restarts in window %d)\n", c.Supervisor, c.ChildID, c.Restarts)
		}
		fmt.Fprintf(o.stdout, "   panic: %s\n   while handling %s %s from %s\n", c.Panic, orDash(c.MessageType), c.Message, orDash(c.From))
		fmt.Fprintf(o.stdout, "   messages before (oldest first):\n")
		for _, e := range c.Preceding {
			fmt.Fprintf(o.stdout, "     %s\n", eventLine(e))
		}
		fmt.Fprintf(o.stdout, "   stack:\n")
		for _, l := range strings.Split(strings.TrimSpace(c.Stack), "\n") {
			fmt.Fprintf(o.stdout, "     %s\n", l)
		}
	}
	return nil
}

func debugFollow(ctx context.Context, o *debugOpts, _ []string) error {
	err := o.client.Follow(ctx, o.query(), func(e debug.Event) bool {
		if o.json {
			b, _ := json.Marshal(e)
			fmt.Fprintf(o.stdout, "%s\n", b)
		} else {
			fmt.Fprintln(o.stdout, eventLine(e))
		}
		return true
	})
	if ctx.Err() != nil { // interrupted: a normal end
		return nil
	}
	return err
}

func debugDump(ctx context.Context, o *debugOpts, _ []string) error {
	raw, err := o.client.DumpRaw(ctx, o.last)
	if err != nil {
		return err
	}
	_, err = o.stdout.Write(raw)
	return err
}

func debugPatch(ctx context.Context, o *debugOpts, pos []string) error {
	doc := []byte(pos[1])
	if !json.Valid(doc) {
		return fmt.Errorf("%w: the state must be valid JSON: %s", errUsage, pos[1])
	}
	r, err := o.client.Patch(ctx, pos[0], doc)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	fmt.Fprintf(o.stdout, "patched %s; state now:\n%s\n", r.Actor, indentJSON(r.State, ""))
	return nil
}

func debugTrace(ctx context.Context, o *debugOpts, pos []string) error {
	onArg := pos[len(pos)-1]
	on, err := strconv.ParseBool(map[string]string{"on": "true", "off": "false"}[onArg])
	if err != nil {
		return fmt.Errorf("%w: want on or off, got %q", errUsage, onArg)
	}
	var what string
	switch {
	case o.loop >= 0 && len(pos) == 1:
		_, err = o.client.TraceLoop(ctx, o.loop, on)
		what = fmt.Sprintf("loop %d", o.loop)
	case o.loop < 0 && len(pos) == 2:
		_, err = o.client.TraceActor(ctx, pos[0], on)
		what = pos[0]
	default:
		return fmt.Errorf("%w: give either ACTOR or --loop L, then on|off", errUsage)
	}
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, map[string]any{"target": what, "on": on})
	}
	fmt.Fprintf(o.stdout, "state tracing %s for %s\n", onArg, what)
	return nil
}
