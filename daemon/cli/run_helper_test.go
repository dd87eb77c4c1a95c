package cli

import "io"

// run is the stock command line without the demo, as the tests drive it.
func run(args []string, stdout, stderr io.Writer) int { return Run(args, stdout, stderr, nil) }
