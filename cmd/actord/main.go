// Command actord is the actord daemon and its tools. Each subcommand lives
// in a file of its own and registers itself in commands (from an init
// function), so that main.go stays a small dispatcher:
//
//	actord debug ...   attach to a running daemon's debug server (debug.go)
package main

import (
	"fmt"
	"io"
	"os"
	"slices"
)

// command runs a subcommand with its arguments and returns the exit code
// (2 for bad usage).
type command struct {
	run     func(args []string, stdout, stderr io.Writer) int
	summary string
}

// commands maps subcommand names to their implementations.
var commands = map[string]command{}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "actord: unknown command %q (try: actord help)\n", args[0])
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: actord COMMAND [ARGS]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'actord COMMAND -h' for a command's usage.")
}
