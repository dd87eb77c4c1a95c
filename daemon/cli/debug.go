package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/debug"
)

func init() {
	builtins["debug"] = command{run: func(_ *program, args []string, stdout, stderr io.Writer) int { return debugMain(args, stdout, stderr) }, summary: "attach to a running daemon: loops, actors, tree, state, events, crashes, follow, peers, dump, patch, trace"}
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

	// events: the event bus
	follow    bool
	busTypes  string
	busQuery  string
	listTypes bool
}

var debugCmds = map[string]*debugCmd{
	"loops":  {summary: "per loop: queue depth, events/s, handler latency percentiles, crashes, restarts", run: debugLoops},
	"actors": {summary: "every actor: id, loop, type, name, supervisor, status, queue", run: debugActors},
	"tree":   {summary: "the supervision tree (--format dot for Graphviz)", run: debugTree, flags: func(fs *flag.FlagSet, o *debugOpts) { fs.StringVar(&o.format, "format", "text", "text or dot") }},
	"state": {args: "ACTOR", summary: "an actor's current state (--history: its recent states and diffs)", min: 1, max: 1, run: debugState, flags: func(fs *flag.FlagSet, o *debugOpts) {
		fs.BoolVar(&o.history, "history", false, "show recent states and their diffs")
	}},
	"events":  {summary: "recent loop events [--actor A] [--last N] [--loop L] [--kind K,...]; --follow: stream the event bus [--type T,...] [--query Q]; --types: list its types", run: debugEvents, flags: busFlags},
	"crashes": {summary: "the crash log: panic, stack, supervisor, messages before", run: debugCrashes},
	"follow":  {summary: "stream events as they happen (like tail -f) [--actor A] [--loop L] [--kind K,...]", run: debugFollow, flags: eventFlags},
	"peers":   {summary: "the remote node's peers: kind, state, score, usage, tags, locks (its connection manager)", run: debugPeers},
	"dump": {summary: "everything, as JSON", run: debugDump, flags: func(fs *flag.FlagSet, o *debugOpts) {
		fs.IntVar(&o.last, "last", 0, "events per loop (default: the server's, 1000)")
	}},
	"patch": {args: "ACTOR JSON", summary: "replace an actor's state (as Erlang's sys:replace_state)", min: 2, max: 2, run: debugPatch},
	"trace": {args: "(ACTOR | --loop L) on|off", summary: "switch state tracing for an actor or a whole loop", min: 1, max: 2, run: debugTrace, flags: func(fs *flag.FlagSet, o *debugOpts) { fs.IntVar(&o.loop, "loop", -1, "a loop instead of an actor") }},
}

func eventFlags(fs *flag.FlagSet, o *debugOpts) {
	fs.StringVar(&o.actor, "actor", "", "only events to or from this actor (id or name)")
	fs.IntVar(&o.last, "last", 0, "the last N events (events: default 100; follow: replayed first)")
	fs.IntVar(&o.loop, "loop", -1, "only this loop (default: all)")
	fs.StringVar(&o.kinds, "kind", "", "only these kinds, comma separated ("+strings.Join(debug.EventKinds(), ",")+")")
}

// busFlags are the flags of events: those of the loop events, and those
// of the event bus.
func busFlags(fs *flag.FlagSet, o *debugOpts) {
	eventFlags(fs, o)
	fs.BoolVar(&o.follow, "follow", false, "stream the daemon's event bus (NodeUp, MemberChanged, ActorCrashed, ...) as events are emitted, until interrupted")
	fs.StringVar(&o.busTypes, "type", "", "with --follow: only these event types, comma separated, as --types names them (event.NodeUp,...)")
	fs.StringVar(&o.busQuery, "query", "", `with --follow: only events matching this query, e.g. "Node = 'b' AND Time > TIME 2024-05-03T14:45:00Z" (docs/events.md)`)
	fs.BoolVar(&o.listTypes, "types", false, "list the event bus's types, with their emitters and subscribers")
}

// defaultAddr is the debug server to attach to: $ACTORD_DEBUG_ADDR, else
// the address `actord run` listens on by default.
func defaultAddr() string {
	if a := os.Getenv("ACTORD_DEBUG_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6060"
}

// defaultTokenFile is the token to attach with: $ACTORD_DEBUG_TOKEN, else
// the one `actord run` writes by default (DATA-DIR/debug.token with the
// default data dir, ~/.actord).
func defaultTokenFile() string {
	if f := os.Getenv("ACTORD_DEBUG_TOKEN"); f != "" {
		return f
	}
	return filepath.Join(dmn.DefaultDataDir(), dmn.TokenFileName)
}

// commonFlags are the flags of every subcommand.
func commonFlags(fs *flag.FlagSet, o *debugOpts) {
	fs.StringVar(&o.addr, "addr", defaultAddr(), "debug server HOST:PORT or URL ($ACTORD_DEBUG_ADDR)")
	fs.StringVar(&o.tokenFile, "token-file", defaultTokenFile(), "the daemon's debug token: its DATA-DIR/debug.token ($ACTORD_DEBUG_TOKEN)")
	fs.BoolVar(&o.json, "json", false, `machine-readable output: one JSON object with "version" (follow: one per line); see docs/debugging.md`)
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound on the request (follow runs until interrupted)")
}

var debugOrder = []string{"loops", "actors", "tree", "state", "events", "crashes", "follow", "peers", "dump", "patch", "trace"}

func debugUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord debug SUBCOMMAND [flags] [args]\n\nsubcommands:")
	for _, n := range debugOrder {
		c := debugCmds[n]
		fmt.Fprintf(w, "  %-8s %-26s %s\n", n, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nflags of every subcommand:")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	commonFlags(fs, &debugOpts{})
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nexit status: 0 done, 1 failed (no daemon, no such actor, ...), 2 bad usage or input\nRun 'actord debug SUBCOMMAND -h' for a subcommand's flags.")
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
	if c.flags != nil {
		c.flags(fs, o)
	}
	commonFlags(fs, o)
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: actord debug %s [flags] %s\n\n%s\n\nflags:\n", args[0], c.args, c.summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err == nil {
		err = checkDebugArgs(fs, c, o, pos)
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord debug %s: %v (see actord debug %s -h)\n", args[0], err, args[0])
		return 2
	}
	cl, err := debug.NewClient(o.addr, o.tokenFile)
	if err != nil {
		if errors.Is(err, iofs.ErrNotExist) {
			err = fmt.Errorf("%w (is the daemon running with this data dir? give --token-file or $ACTORD_DEBUG_TOKEN)", err)
		}
		fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
		return 1
	}
	o.client = cl
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if args[0] != "follow" && !o.follow {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	if err := c.run(ctx, o, pos); err != nil {
		fmt.Fprintf(stderr, "actord debug %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) || errors.Is(err, debug.ErrBadRequest) {
			return 2 // the daemon refused the input (a loop it does not have, say)
		}
		return 1
	}
	return 0
}

// errUsage marks a bad argument found while running a subcommand.
var errUsage = errors.New("bad usage")

// checkDebugArgs refuses what the server would refuse or silently take:
// the wrong number of arguments, negative counts, unknown event kinds,
// conflicting flags.
func checkDebugArgs(fs *flag.FlagSet, c *debugCmd, o *debugOpts, pos []string) error {
	if len(pos) < c.min || len(pos) > c.max {
		want := c.args
		if want == "" {
			want = "none"
		}
		return fmt.Errorf("want arguments %s, got %d", want, len(pos))
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch {
		case err != nil:
		case f.Name == "loop" && o.loop < 0:
			err = fmt.Errorf("--loop %d: loops are numbered from 0", o.loop)
		case f.Name == "last" && o.last < 0:
			err = fmt.Errorf("--last %d: want a count, 0 or more", o.last)
		case f.Name == "timeout" && o.timeout <= 0:
			err = fmt.Errorf("--timeout %v: want a positive duration", o.timeout)
		case f.Name == "json" && o.json && o.format == "dot":
			err = errors.New("--json and --format dot: choose one")
		case o.follow && (f.Name == "actor" || f.Name == "loop" || f.Name == "kind" || f.Name == "last"):
			err = fmt.Errorf("--follow streams the event bus; --%s selects loop events (stream those with actord debug follow)", f.Name)
		case !o.follow && (f.Name == "type" || f.Name == "query"):
			err = fmt.Errorf("--%s selects the event bus stream: give --follow too", f.Name)
		case o.listTypes && o.follow:
			err = errors.New("--types and --follow: choose one")
		}
	})
	if err != nil {
		return err
	}
	if o.format != "" && o.format != "text" && o.format != "dot" {
		return fmt.Errorf("--format must be text or dot, not %q", o.format)
	}
	if o.format == "dot" && o.json {
		return errors.New("--json and --format dot: choose one")
	}
	if o.kinds != "" {
		known := debug.EventKinds()
		for _, k := range strings.Split(o.kinds, ",") {
			if !slices.Contains(known, k) {
				return fmt.Errorf("--kind: unknown event kind %q: want some of %s", k, strings.Join(known, ","))
			}
		}
	}
	return nil
}

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

// printJSON writes v as the --json output: indented, with < > & as they
// are (actor ids are <0.1.0>).
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// followLine is one line of `follow --json`.
type followLine struct {
	Version int         `json:"version"`
	Event   debug.Event `json:"event"`
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
		return printJSON(o.stdout, debug.LoopsReply{Version: debug.ProtocolVersion, Loops: loops})
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
		if n.Status != "running" && n.Status != "remote" {
			status = " (" + n.Status + ")"
		}
		if n.Status == "remote" {
			fmt.Fprintf(o.stdout, "%s%s%s %s on node %s%s\n", prefix, branch, orDash(n.Path), n.ID, n.Node, kind)
		} else {
			fmt.Fprintf(o.stdout, "%s%s%s %s loop %d %s%s%s\n", prefix, branch, orDash(n.Path), n.ID, n.Loop, orDash(n.Type), kind, status)
		}
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
		switch n.Status {
		case "running":
		case "remote": // on another node: not the same as a suspended actor
			style = ", style=dotted"
		default:
			style = ", style=dashed"
		}
		label := fmt.Sprintf("%s\n%s loop %d\n%s", orDash(n.Path), n.ID, n.Loop, orDash(n.Type))
		if n.Status == "remote" {
			label = fmt.Sprintf("%s\n%s\non node %s", orDash(n.Path), n.ID, n.Node)
		}
		fmt.Fprintf(&b, "  %q [label=%q, shape=%s%s];\n", n.ID, label, shape, style)
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
		return printJSON(o.stdout, debug.StateReply{Version: debug.ProtocolVersion, State: st})
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
	switch {
	case o.listTypes:
		return debugBusTypes(ctx, o)
	case o.follow:
		return debugBusFollow(ctx, o)
	}
	ev, err := o.client.Events(ctx, o.query())
	if err != nil {
		return err
	}
	if o.json {
		if ev == nil {
			ev = []debug.Event{}
		}
		return printJSON(o.stdout, debug.EventsReply{Version: debug.ProtocolVersion, Events: ev})
	}
	for _, e := range ev {
		fmt.Fprintln(o.stdout, eventLine(e))
	}
	return nil
}

// debugBusTypes lists the event bus's types.
func debugBusTypes(ctx context.Context, o *debugOpts) error {
	r, err := o.client.BusTypes(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tEMITTERS\tSUBSCRIBERS\tSTATEFUL")
	for _, t := range r.Types {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%v\n", t.Type, t.Emitters, t.Subscribers, t.Stateful)
	}
	fmt.Fprintf(tw, "(wildcard subscriptions: %d)\n", r.Wildcards)
	return tw.Flush()
}

// debugBusFollow streams the event bus: one line per event, or with --json
// the server's lines as they are.
func debugBusFollow(ctx context.Context, o *debugOpts) error {
	q := debug.BusQuery{Query: o.busQuery}
	if o.busTypes != "" {
		q.Types = strings.Split(o.busTypes, ",")
	}
	enc := json.NewEncoder(o.stdout)
	enc.SetEscapeHTML(false)
	err := o.client.FollowBus(ctx, q, func(e debug.BusEvent) bool {
		if o.json {
			_ = enc.Encode(e)
			return true
		}
		ev := string(e.Event)
		if e.Truncated {
			var s string
			_ = json.Unmarshal(e.Event, &s)
			ev = s + "…"
		}
		fmt.Fprintf(o.stdout, "%s #%d %s %s\n", shortTime(e.Time), e.N, e.Type, ev)
		return true
	})
	if ctx.Err() != nil { // interrupted: a normal end
		return nil
	}
	return err
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
	enc := json.NewEncoder(o.stdout)
	enc.SetEscapeHTML(false)
	err := o.client.Follow(ctx, o.query(), func(e debug.Event) bool {
		if o.json {
			_ = enc.Encode(followLine{Version: debug.ProtocolVersion, Event: e}) // one line each
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
	var r *debug.TraceReply
	switch {
	case o.loop >= 0 && len(pos) == 1:
		r, err = o.client.TraceLoop(ctx, o.loop, on)
		what = fmt.Sprintf("loop %d", o.loop)
	case o.loop < 0 && len(pos) == 2:
		r, err = o.client.TraceActor(ctx, pos[0], on)
		what = pos[0]
	default:
		return fmt.Errorf("%w: give either ACTOR or --loop L, then on|off", errUsage)
	}
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	fmt.Fprintf(o.stdout, "state tracing %s for %s\n", onArg, what)
	return nil
}

// debugPeers lists the remote node's peers as its connection manager sees
// them, lowest id first, and its counters.
func debugPeers(ctx context.Context, o *debugOpts, _ []string) error {
	r, err := o.client.Peers(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.stdout, r)
	}
	tw := tabwriter.NewWriter(o.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tKIND\tSTATE\tFOR\tSCORE\tASKS\tLINKS\tMONITORS\tREFS\tTAGS\tLOCKS")
	now := time.Now()
	for _, p := range r.Peers {
		state := p.State.String()
		if p.InGrace {
			state += " (grace)"
		}
		locks := make([]string, 0, len(p.Locks))
		for _, l := range p.Locks {
			locks = append(locks, fmt.Sprintf("%s until %s", l.Name, l.Until.Format(time.TimeOnly)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Peer, p.Kind, state,
			now.Sub(p.Since).Round(time.Second), p.Score, p.Usage.Asks, p.Usage.Links, p.Usage.Monitors, p.Usage.Refs,
			orDash(strings.Join(p.Tags, ",")), orDash(strings.Join(locks, ",")))
	}
	st := r.Stats
	fmt.Fprintf(tw, "(%d peers, %d connected; %d trims closed %d, %d vetoed; %d forgotten; %d refused)\n",
		st.Peers, st.Connected, st.Trims, st.Closed, st.Vetoed, st.Forgotten, st.Refused)
	return tw.Flush()
}
