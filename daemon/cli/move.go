package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/actord/actord/client"
	"github.com/actord/actord/gateway"
)

// `actord app move` and `actord drain`: a child's move to another daemon
// with its state, and the move of every child off one daemon
// (docs/upgrades.md, docs/deploy.md).

func init() {
	appCmds["move"] = &appCmd{args: "NAME", summary: "move a running child to another daemon with its state: --child C [--to NODE]",
		run: appMove, flags: moveFlags, timeout: moveTimeout}
	appOrder = append(appOrder[:3], append([]string{"move"}, appOrder[3:]...)...)
	builtins["drain"] = command{run: func(_ *program, args []string, stdout, stderr io.Writer) int { return drainMain(args, stdout, stderr) },
		summary: "move the application children off a daemon with their state, before a restart"}
}

// moveTimeout is `actord app move`'s default --timeout: past the daemon's
// own bound of a MoveChild (2m15s: the move's 2 minutes on the root's
// daemon, and the hops to it), so that the command does not give up on a
// move that happened.
const moveTimeout = 2*time.Minute + 25*time.Second

// drainTimeout is `actord drain`'s default --timeout: the daemon's own
// bound (DrainTimeout, default 2 minutes) and a little more.
const drainTimeout = 2*time.Minute + 10*time.Second

func moveFlags(fs *flag.FlagSet, o *appOpts) {
	fs.StringVar(&o.child, "child", "", "the child to move (required)")
	fs.StringVar(&o.to, "to", "", "the daemon (member name) to move it to; default: the live one with the fewest of the application's children")
}

// moveJSON is one child's move, as `actord app move --json` and `actord
// drain --json` print it.
type moveJSON struct {
	App   string `json:"app"`
	Child string `json:"child"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func moveOut(r gateway.MoveResult) moveJSON {
	out := moveJSON{App: r.App, Child: r.Child, From: r.From, To: r.To, OK: r.Err() == nil}
	if err := r.Err(); err != nil {
		out.Error = err.Error()
	}
	return out
}

// appMoveJSON is the output of `actord app move --json`.
type appMoveJSON struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	Note    string `json:"note,omitempty"`
	moveJSON
}

func moveLine(r gateway.MoveResult) string {
	if err := r.Err(); err != nil {
		where := "where it was"
		if r.From != "" {
			where = "on " + r.From
		}
		return fmt.Sprintf("%s: %s not moved, runs %s: %v", r.App, r.Child, where, err)
	}
	line := fmt.Sprintf("%s: %s moved from %s to %s", r.App, r.Child, r.From, r.To)
	if r.Result.Msg != "" {
		line += " (" + r.Result.Msg + ")"
	}
	return line
}

func appMove(ctx context.Context, c *client.Client, o *appOpts, name string, w io.Writer) error {
	if o.child == "" {
		return fmt.Errorf("%w: --child is required", errUsage)
	}
	r, err := c.MoveChild(ctx, name, o.child, o.to)
	if r.App == "" { // no answer: the outcome is unknown
		return fmt.Errorf("%w (the outcome is unknown: see the daemons' logs)", err)
	}
	if o.json {
		if perr := printJSON(w, appMoveJSON{Version: 1, Op: "move", Note: r.Result.Msg, moveJSON: moveOut(r)}); perr != nil {
			return perr
		}
	} else if err == nil {
		fmt.Fprintln(w, moveLine(r))
	}
	return err
}

// drainJSON is the output of `actord drain --json`.
type drainJSON struct {
	Version  int        `json:"version"`
	Node     string     `json:"node"`
	OK       bool       `json:"ok"`
	Moved    int        `json:"moved"`
	Children []moveJSON `json:"children"`
	Roots    []rootJSON `json:"roots"`
	Error    string     `json:"error,omitempty"`
}

// rootJSON is one application root's handover by `actord drain --json`.
type rootJSON struct {
	App   string `json:"app"`
	To    string `json:"to,omitempty"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func rootLine(r gateway.RootMove) string {
	if err := r.Err(); err != nil {
		return fmt.Sprintf("%s: root not handed over (it fails over when this daemon stops, its children restart): %v", r.App, err)
	}
	return fmt.Sprintf("%s: root handed over to %s, its children adopted where they run", r.App, r.To)
}

func drainUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, `usage: actord drain [flags]

Moves every application child running on the daemon whose capability file
is given, one at a time, to another live member with its state (its kind
needs a handoff registered). A child that cannot move stays: when the
daemon stops, the failover restarts it elsewhere without its state. Then
stop the daemon and start it again (on a new binary).

exit status: 0 the drain ran (each child's outcome is printed), 1 it could
not (no daemon, registry unavailable), 2 bad usage

flags:`)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func drainMain(args []string, stdout, stderr io.Writer) int {
	o := &appOpts{}
	fs := flag.NewFlagSet("actord drain", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	appFlags(fs, o, drainTimeout)
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		drainUsage(stdout, fs)
		return 0
	}
	if err == nil && len(pos) > 0 {
		err = fmt.Errorf("want no arguments, got %d", len(pos))
	}
	if err == nil && o.timeout <= 0 {
		err = fmt.Errorf("--timeout %v: want a positive duration", o.timeout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord drain: %v (see actord drain -h)\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	capability, err := client.ReadCapabilityFile(o.capFile)
	if err == nil {
		var cl *client.Client
		cl, err = client.Dial(ctx, capability, client.Options{ClusterKeyFile: o.keyFile, Timeout: o.timeout})
		if err == nil {
			defer cl.Close()
			err = drainRun(ctx, cl, o, stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord drain: %v\n", err)
		return 1
	}
	return 0
}

func drainRun(ctx context.Context, c *client.Client, o *appOpts, w io.Writer) error {
	r, err := c.Drain(ctx)
	if r.Node == "" {
		return err
	}
	if o.json {
		out := drainJSON{Version: 1, Node: r.Node, OK: err == nil, Moved: r.Moved(), Children: []moveJSON{}, Roots: []rootJSON{}}
		for _, m := range r.Children {
			out.Children = append(out.Children, moveOut(m))
		}
		for _, h := range r.Roots {
			rj := rootJSON{App: h.App, To: h.To, OK: h.Err() == nil}
			if e := h.Err(); e != nil {
				rj.Error = e.Error()
			}
			out.Roots = append(out.Roots, rj)
		}
		if err != nil {
			out.Error = err.Error()
		}
		if perr := printJSON(w, out); perr != nil {
			return perr
		}
		return err
	}
	for _, m := range r.Children {
		fmt.Fprintln(w, moveLine(m))
	}
	roots := 0
	for _, h := range r.Roots {
		fmt.Fprintln(w, rootLine(h))
		if h.Err() == nil {
			roots++
		}
	}
	if err == nil {
		fmt.Fprintf(w, "%s drained: %d of %d children moved, %d of %d roots handed over\n", r.Node, r.Moved(), len(r.Children), roots, len(r.Roots))
	}
	return err
}
