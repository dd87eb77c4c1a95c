// Package cli is the actord command line as a library, so that a program
// of a dozen lines is an actord daemon that hosts its own actor kinds:
//
//	func main() {
//		cli.Main(daemon.Kinds{"counter": daemon.Kind(counter.New)})
//	}
//
// The program has the stock actord's commands, the same code: `run` (the
// daemon, from flags and a JSON config file, with its ready line, signals
// and systemd notification: see docs/deploy.md) and `debug` (attach to a
// running daemon). Its kinds are registered on the daemon's gateway before
// it is ready (daemon.Config.Kinds), so clients holding its capability
// spawn them with client.Client.Spawn. The stock actord is this package
// with no kinds and one more command, its demo.
//
// It is a package apart from daemon so that a program that embeds a daemon
// (daemon.Start) does not take its flags, its exit codes and the debugger's
// output formats along.
package cli

import (
	"fmt"
	"io"
	"os"
	"slices"

	dmn "github.com/actord/actord/daemon" // not "daemon": debug_test.go has a func of that name
	"github.com/actord/actord/remote"
)

// command runs a subcommand with its arguments and returns the exit code
// (2 for bad usage).
type command struct {
	run     func(p *program, args []string, stdout, stderr io.Writer) int
	summary string
}

// builtins are the commands every program has: run and debug, each
// registered from an init function of its own file.
var builtins = map[string]command{}

// program is what Main was given.
type program struct {
	kinds    dmn.Kinds
	types    func(*remote.Node) error
	handoffs []dmn.KindHandoff
	commands map[string]command
}

// Option adds to a program: a command (Command), message types (Types).
type Option func(*program)

// Command adds a command named name to the program, run with the
// arguments that follow its name; it returns the exit code (by convention
// 2 for bad usage). summary is its line in the program's usage. A name
// that is already a command (run, debug, or an earlier Command) makes Run
// panic: it is a programming error.
func Command(name, summary string, run func(args []string, stdout, stderr io.Writer) int) Option {
	return func(p *program) {
		if _, dup := p.commands[name]; dup || name == "" {
			panic(fmt.Sprintf("cli: command %q defined twice (or empty)", name))
		}
		p.commands[name] = command{summary: summary, run: func(_ *program, args []string, stdout, stderr io.Writer) int {
			return run(args, stdout, stderr)
		}}
	}
}

// Types sets the function that registers the message types of the
// program's actors on the daemon's remote node before it is ready
// (daemon.Config.RegisterTypes): a package's RegisterTypes, which its
// clients call too. A failure is a configuration error (exit code 2).
func Types(register func(n *remote.Node) error) Option {
	return func(p *program) { p.types = register }
}

// Handoffs registers the state handoffs of the program's kinds
// (daemon.Config.Handoffs): the children of those kinds keep their state
// when `actord app move` or `actord drain` moves them.
func Handoffs(hs ...dmn.KindHandoff) Option {
	return func(p *program) { p.handoffs = append(p.handoffs, hs...) }
}

// Main runs the command line in os.Args with kinds and exits with its
// code. See Run.
func Main(kinds dmn.Kinds, opts ...Option) {
	os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr, kinds, opts...))
}

// Run runs the command line args (without the program's name): the
// command args[0] with the rest of args. `run` starts a daemon hosting
// kinds and runs it until SIGTERM or SIGINT. It returns the exit code: 0,
// 1 for a failure, 2 for bad usage (an unknown command, a bad flag or
// configuration).
func Run(args []string, stdout, stderr io.Writer, kinds dmn.Kinds, opts ...Option) int {
	p := &program{kinds: kinds, commands: make(map[string]command, len(builtins))}
	for n, c := range builtins {
		p.commands[n] = c
	}
	for _, o := range opts {
		o(p)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := p.commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "actord: unknown command %q (try: actord help)\n", args[0])
		return 2
	}
	return c.run(p, args[1:], stdout, stderr)
}

func (p *program) usage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord COMMAND [ARGS]\n\ncommands:")
	names := make([]string, 0, len(p.commands))
	for n := range p.commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, p.commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'actord COMMAND -h' for a command's usage.")
}
