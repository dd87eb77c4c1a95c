package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The README's main command: every line is counted except the one that
// crashes its counter, the crash is reported, the blocking job reports back,
// the crashed counter is dead and the others answer, and nothing leaks.
func TestHelloDemo(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"crash report: actor ",
		"line 2 failed: ",
		"(crashed: true)",
		"blocking job: saved 5 lines (err <nil>)",
		"top words: loop=4 the=4 a=3 on=3 runs=3",
		": actor: no such actor",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	for _, i := range []string{"0", "1", "3", "4"} {
		if !strings.Contains(got, "line "+i+" counted") {
			t.Errorf("line %s was not counted:\n%s", i, got)
		}
	}
}
