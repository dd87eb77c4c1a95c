package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/client"
	dmn "github.com/actord/actord/daemon"
	"github.com/actord/actord/gateway"
)

func init() {
	builtins["app"] = command{run: func(_ *program, args []string, stdout, stderr io.Writer) int { return appMain(args, stdout, stderr) },
		summary: "the cluster's applications: list, deploy, upgrade, move, start, stop, remove"}
}

// maxSpecFile bounds the spec file `actord app deploy` reads.
const maxSpecFile = 1 << 20

// appOpts are the flags of every app subcommand.
type appOpts struct {
	capFile, keyFile string
	json             bool
	timeout          time.Duration
	// upgrade's (child: move's too)
	specFile, child, kind string
	// move's
	to string
}

// appCmd is one `actord app` subcommand.
type appCmd struct {
	args    string
	summary string
	run     func(ctx context.Context, c *client.Client, o *appOpts, arg string, stdout io.Writer) error
	// flags adds the subcommand's own flags; timeout is its default
	// --timeout (0: 15 s).
	flags   func(fs *flag.FlagSet, o *appOpts)
	timeout time.Duration
}

var appCmds = map[string]*appCmd{
	"list":   {summary: "the applications: state, desired state, daemon, generation, children", run: appList},
	"deploy": {args: "SPEC.json|-", summary: "create or update an application from its JSON spec (docs/supervision.md) and run it", run: appDeploy},
	"upgrade": {args: "NAME", summary: "upgrade a running application's children in place, one at a time: -f SPEC.json (only kinds change) or --child C --kind K",
		run: appUpgrade, flags: upgradeFlags, timeout: upgradeTimeout},
	"start":  {args: "NAME", summary: "run a stopped application again", run: appOp("start")},
	"stop":   {args: "NAME", summary: "stop an application (its record stays)", run: appOp("stop")},
	"remove": {args: "NAME", summary: "stop an application and drop it", run: appOp("remove")},
}

var appOrder = []string{"list", "deploy", "upgrade", "start", "stop", "remove"}

// defaultCapFile is the capability to use: $ACTORD_CAPABILITY_FILE, else
// the one `actord run` writes with the default data dir.
func defaultCapFile() string {
	if f := os.Getenv("ACTORD_CAPABILITY_FILE"); f != "" {
		return f
	}
	return filepath.Join(dmn.DefaultDataDir(), dmn.CapabilityFile)
}

func appFlags(fs *flag.FlagSet, o *appOpts, timeout time.Duration) {
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	fs.StringVar(&o.capFile, "capability-file", defaultCapFile(), "the daemon's gateway capability: its DATA-DIR/"+dmn.CapabilityFile+" ($ACTORD_CAPABILITY_FILE)")
	fs.StringVar(&o.keyFile, "cluster-key-file", "", "the cluster key file, if the daemons have one")
	fs.BoolVar(&o.json, "json", false, `machine-readable output: one JSON object with "version"`)
	fs.DurationVar(&o.timeout, "timeout", timeout, "bound on the request")
}

func appUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord app SUBCOMMAND [flags] [args]\n\nsubcommands:")
	for _, n := range appOrder {
		c := appCmds[n]
		fmt.Fprintf(w, "  %-8s %-12s %s\n", n, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nflags of every subcommand:")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	appFlags(fs, &appOpts{}, 0)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nexit status: 0 done, 1 failed (no daemon, registry unavailable, an upgrade rolled back, ...), 2 bad usage or a refused spec")
}

func appMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		appUsage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		appUsage(stdout)
		return 0
	}
	c, ok := appCmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "actord app: unknown subcommand %q (try: actord app help)\n", args[0])
		return 2
	}
	o := &appOpts{}
	fs := flag.NewFlagSet("actord app "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	appFlags(fs, o, c.timeout)
	if c.flags != nil {
		c.flags(fs, o)
	}
	pos, err := parseInterleaved(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: actord app %s [flags] %s\n\n%s\n\nflags:\n", args[0], c.args, c.summary)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err == nil {
		switch {
		case c.args == "" && len(pos) != 0:
			err = fmt.Errorf("want no arguments, got %d", len(pos))
		case c.args != "" && len(pos) != 1:
			err = fmt.Errorf("want %s, got %d arguments", c.args, len(pos))
		case o.timeout <= 0:
			err = fmt.Errorf("--timeout %v: want a positive duration", o.timeout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord app %s: %v (see actord app %s -h)\n", args[0], err, args[0])
		return 2
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	capability, err := client.ReadCapabilityFile(o.capFile)
	if err == nil {
		var cl *client.Client
		cl, err = client.Dial(ctx, capability, client.Options{ClusterKeyFile: o.keyFile, Timeout: o.timeout})
		if err == nil {
			defer cl.Close()
			err = c.run(ctx, cl, o, arg, stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "actord app %s: %v\n", args[0], err)
		if errors.Is(err, errUsage) || errors.Is(err, client.ErrBadAppSpec) {
			return 2
		}
		return 1
	}
	return 0
}

// appListJSON is the output of `actord app list --json`.
type appListJSON struct {
	Version int              `json:"version"`
	Apps    []client.AppInfo `json:"apps"`
}

// appDoneJSON is the output of the other subcommands with --json.
type appDoneJSON struct {
	Version int    `json:"version"`
	App     string `json:"app"`
	Op      string `json:"op"`
	OK      bool   `json:"ok"`
}

func appList(ctx context.Context, c *client.Client, o *appOpts, _ string, w io.Writer) error {
	apps, err := c.Apps(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(w, appListJSON{Version: 1, Apps: apps})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tDESIRED\tDAEMON\tGEN\tCHILDREN")
	for _, a := range apps {
		node := a.Node
		if node == "" {
			node = "-"
		}
		kids := make([]string, len(a.Spec.Children))
		for i, ch := range a.Spec.Children {
			kids[i] = ch.Name + ":" + ch.Kind
			if ch.Node != "" {
				kids[i] += "@" + ch.Node
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.Spec.Name, a.State, a.Desired, node, a.Gen, strings.Join(kids, ","))
	}
	return tw.Flush()
}

func appDeploy(ctx context.Context, c *client.Client, o *appOpts, path string, w io.Writer) error {
	spec, err := readSpec(path)
	if err != nil {
		return err
	}
	if err := c.DeployApp(ctx, spec); err != nil {
		return err
	}
	return appDone(w, o, spec.Name, "deployed")
}

// readSpec reads a JSON spec from path ("-": stdin), bounded by
// maxSpecFile.
func readSpec(path string) (client.AppSpec, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return client.AppSpec{}, fmt.Errorf("%w: spec file: %w", errUsage, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSpecFile+1))
	if err != nil {
		return client.AppSpec{}, fmt.Errorf("%w: spec file: %w", errUsage, err)
	}
	if len(b) > maxSpecFile {
		return client.AppSpec{}, fmt.Errorf("%w: spec file over %d bytes", errUsage, maxSpecFile)
	}
	return client.ParseAppSpec(b)
}

func appOp(op string) func(ctx context.Context, c *client.Client, o *appOpts, name string, w io.Writer) error {
	return func(ctx context.Context, c *client.Client, o *appOpts, name string, w io.Writer) error {
		var err error
		switch op {
		case "start":
			err = c.StartApp(ctx, name)
		case "stop":
			err = c.StopApp(ctx, name)
		default:
			err = c.RemoveApp(ctx, name)
		}
		if err != nil {
			return err
		}
		return appDone(w, o, name, op)
	}
}

func appDone(w io.Writer, o *appOpts, app, op string) error {
	if o.json {
		return printJSON(w, appDoneJSON{Version: 1, App: app, Op: op, OK: true})
	}
	_, err := fmt.Fprintf(w, "%s: %s\n", app, op)
	return err
}

// upgradeTimeout is `actord app upgrade`'s default --timeout: the daemon
// bounds an upgrade, its rollback included, to 2 minutes.
const upgradeTimeout = 2*time.Minute + 10*time.Second

func upgradeFlags(fs *flag.FlagSet, o *appOpts) {
	fs.StringVar(&o.specFile, "f", "", "the new spec (SPEC.json, or - for stdin): the running one with children's kinds changed")
	fs.StringVar(&o.child, "child", "", "the child to upgrade (with --kind), instead of -f")
	fs.StringVar(&o.kind, "kind", "", "the child's new kind (with --child)")
}

// appUpgradeJSON is the output of `actord app upgrade --json`, printed
// whether the upgrade succeeded or not (then with the error).
type appUpgradeJSON struct {
	Version int                   `json:"version"`
	App     string                `json:"app"`
	Op      string                `json:"op"`
	OK      bool                  `json:"ok"`
	Steps   []gateway.UpgradeStep `json:"steps"`
	Error   string                `json:"error,omitempty"`
}

func appUpgrade(ctx context.Context, c *client.Client, o *appOpts, name string, w io.Writer) error {
	var req gateway.UpgradeApp
	switch {
	case o.specFile != "" && (o.child != "" || o.kind != ""):
		return fmt.Errorf("%w: give -f or --child and --kind, not both", errUsage)
	case o.specFile != "":
		spec, err := readSpec(o.specFile)
		if err != nil {
			return err
		}
		if spec.Name != name {
			return fmt.Errorf("%w: the spec is of %q, not %q", errUsage, spec.Name, name)
		}
		req.Spec = spec
	case o.child != "" && o.kind != "":
		req.App, req.Child, req.Kind = name, o.child, o.kind
	default:
		return fmt.Errorf("%w: want -f SPEC.json, or --child and --kind", errUsage)
	}
	gw, err := c.Capability().Ref(c.Node())
	if err != nil {
		return err
	}
	// In text, each step is printed as the daemon reports it; the reply
	// then adds the final state of each child whose last line was not it
	// (a report lost or late).
	pr := &progressPrinter{w: w, app: name, last: map[string]gateway.UpgradeStep{}}
	if !o.json {
		if ref, err := c.System().Spawn(ctx, func() actor.Actor { return pr }); err == nil {
			req.Progress = ref
		}
	}
	v, err := c.Ask(ctx, gw, req)
	if !req.Progress.IsZero() {
		// The steps came before the reply: once the printer has answered
		// this, it has printed them.
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = c.System().Ask(fctx, req.Progress, progressFlush{})
		cancel()
	}
	pr.close()
	if err != nil {
		return fmt.Errorf("upgrade %s: %w (the outcome is unknown: see actord app list, and the daemons' logs)", name, err)
	}
	r, ok := v.(gateway.UpgradeResult)
	if !ok {
		return fmt.Errorf("upgrade %s: unexpected reply %T", name, v)
	}
	uerr := r.Result.Err()
	if o.json {
		out := appUpgradeJSON{Version: 1, App: name, Op: "upgrade", OK: uerr == nil, Steps: r.Steps}
		if out.Steps == nil {
			out.Steps = []gateway.UpgradeStep{}
		}
		if uerr != nil {
			out.Error = uerr.Error()
		}
		if err := printJSON(w, out); err != nil {
			return err
		}
	} else {
		for _, s := range r.Steps {
			if pr.last[s.Child] != s {
				fmt.Fprintln(w, stepLine(name, s))
			}
		}
		if uerr == nil {
			fmt.Fprintf(w, "%s: upgraded\n", name)
		}
	}
	if uerr != nil {
		return fmt.Errorf("upgrade %s: %w", name, uerr)
	}
	return nil
}

func stepLine(app string, s gateway.UpgradeStep) string {
	line := fmt.Sprintf("%s: %s on %s: %s -> %s: %s", app, s.Child, s.Node, s.From, s.To, s.Outcome)
	if s.Reason != "" {
		line += ": " + s.Reason
	}
	return line
}

// maxProgressLines bounds the progress lines printed (a daemon's relay
// sends at most 2·64+1).
const maxProgressLines = 200

// progressPrinter prints the steps of an upgrade as the daemon reports
// them, until closed; last is each child's last step printed.
type progressPrinter struct {
	w   io.Writer
	app string

	mu     sync.Mutex
	closed bool
	n      int
	last   map[string]gateway.UpgradeStep
}

// progressFlush is answered by a progressPrinter once it has printed
// what it got before.
type progressFlush struct{}

func (p *progressPrinter) Receive(_ *actor.Context, msg any) (any, error) {
	s, ok := msg.(gateway.UpgradeStep)
	if !ok {
		return true, nil // progressFlush, or anything else
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.n >= maxProgressLines {
		return nil, nil
	}
	p.n++
	p.last[s.Child] = s
	fmt.Fprintln(p.w, stepLine(p.app, s))
	return nil, nil
}

// close stops the printing: what arrives later is dropped.
func (p *progressPrinter) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}
