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
	"text/tabwriter"
	"time"

	"github.com/actord/actord/client"
	dmn "github.com/actord/actord/daemon"
)

func init() {
	builtins["app"] = command{run: func(_ *program, args []string, stdout, stderr io.Writer) int { return appMain(args, stdout, stderr) },
		summary: "the cluster's applications: list, deploy, start, stop, remove"}
}

// maxSpecFile bounds the spec file `actord app deploy` reads.
const maxSpecFile = 1 << 20

// appOpts are the flags of every app subcommand.
type appOpts struct {
	capFile, keyFile string
	json             bool
	timeout          time.Duration
}

// appCmd is one `actord app` subcommand.
type appCmd struct {
	args    string
	summary string
	run     func(ctx context.Context, c *client.Client, o *appOpts, arg string, stdout io.Writer) error
}

var appCmds = map[string]*appCmd{
	"list":   {summary: "the applications: state, desired state, daemon, generation, children", run: appList},
	"deploy": {args: "SPEC.json|-", summary: "create or update an application from its JSON spec (docs/supervision.md) and run it", run: appDeploy},
	"start":  {args: "NAME", summary: "run a stopped application again", run: appOp("start")},
	"stop":   {args: "NAME", summary: "stop an application (its record stays)", run: appOp("stop")},
	"remove": {args: "NAME", summary: "stop an application and drop it", run: appOp("remove")},
}

var appOrder = []string{"list", "deploy", "start", "stop", "remove"}

// defaultCapFile is the capability to use: $ACTORD_CAPABILITY_FILE, else
// the one `actord run` writes with the default data dir.
func defaultCapFile() string {
	if f := os.Getenv("ACTORD_CAPABILITY_FILE"); f != "" {
		return f
	}
	return filepath.Join(dmn.DefaultDataDir(), dmn.CapabilityFile)
}

func appFlags(fs *flag.FlagSet, o *appOpts) {
	fs.StringVar(&o.capFile, "capability-file", defaultCapFile(), "the daemon's gateway capability: its DATA-DIR/"+dmn.CapabilityFile+" ($ACTORD_CAPABILITY_FILE)")
	fs.StringVar(&o.keyFile, "cluster-key-file", "", "the cluster key file, if the daemons have one")
	fs.BoolVar(&o.json, "json", false, `machine-readable output: one JSON object with "version"`)
	fs.DurationVar(&o.timeout, "timeout", 15*time.Second, "bound on the request")
}

func appUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord app SUBCOMMAND [flags] [args]\n\nsubcommands:")
	for _, n := range appOrder {
		c := appCmds[n]
		fmt.Fprintf(w, "  %-7s %-12s %s\n", n, c.args, c.summary)
	}
	fmt.Fprintln(w, "\nflags of every subcommand:")
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	appFlags(fs, &appOpts{})
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nexit status: 0 done, 1 failed (no daemon, registry unavailable, ...), 2 bad usage or a refused spec")
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
	appFlags(fs, o)
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
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("%w: spec file: %w", errUsage, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxSpecFile+1))
	if err != nil {
		return fmt.Errorf("%w: spec file: %w", errUsage, err)
	}
	if len(b) > maxSpecFile {
		return fmt.Errorf("%w: spec file over %d bytes", errUsage, maxSpecFile)
	}
	spec, err := client.ParseAppSpec(b)
	if err != nil {
		return err
	}
	if err := c.DeployApp(ctx, spec); err != nil {
		return err
	}
	return appDone(w, o, spec.Name, "deployed")
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
