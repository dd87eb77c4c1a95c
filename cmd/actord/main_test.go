package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool (imported with the daemon),
		// started at package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// TestUsage: the stock actord has package cli's commands and its demo.
func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range []string{"\n  debug ", "\n  demo ", "\n  run "} {
		if !strings.Contains(errb.String(), c) {
			t.Errorf("usage lacks %q:\n%s", c, errb.String())
		}
	}
}
