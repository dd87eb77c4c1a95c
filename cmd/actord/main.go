// Command actord is the actord daemon and its tools: the command line of
// package daemon/cli (`actord run`, `actord debug`), which any program can
// have with its own actor kinds (see docs/deploy.md, "Your own daemon"),
// and the demo (demo.go), which hosts the kvstore example. Commands of
// this program register themselves in commands from an init function of
// their own file.
package main

import (
	"io"
	"os"

	"github.com/actord/actord/daemon/cli"
)

// command runs a subcommand with its arguments and returns the exit code
// (2 for bad usage).
type command struct {
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}

// commands are this program's commands beyond those of package cli.
var commands = map[string]command{}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	var opts []cli.Option
	for name, c := range commands {
		opts = append(opts, cli.Command(name, c.summary, c.run))
	}
	return cli.Run(args, stdout, stderr, nil, opts...)
}
