package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
)

// busDaemon starts a debug server over an event bus with a NodeUp and a
// stateful Membership emitter, and returns the flags to reach it.
func busDaemon(t *testing.T) (flags []string, bus *event.Bus, up *event.Emitter[event.NodeUp]) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	bus = event.New(event.Config{})
	tok := filepath.Join(t.TempDir(), "token")
	srv, err := debug.NewServer(debug.New(debug.Config{Loops: 1}), debug.ServerConfig{TokenFile: tok, Logger: quiet, Bus: bus})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		bus.Close()
	})
	if up, err = event.NewEmitter[event.NodeUp](bus); err != nil {
		t.Fatal(err)
	}
	if _, err := event.NewEmitter[event.Membership](bus, event.Stateful()); err != nil {
		t.Fatal(err)
	}
	return []string{"--addr", srv.Addr(), "--token-file", tok}, bus, up
}

// waitSubscribed waits until n subscriptions receive NodeUp: installed, not
// only admitted (Bus.Subscriptions counts those while Subscribe runs).
func waitSubscribed(t *testing.T, up *event.Emitter[event.NodeUp], n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for up.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions receive NodeUp, want %d", up.Subscribers(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// `actord debug events --follow` streams the bus with a type filter and a
// query; --json prints the server's lines; --types lists the types.
func TestDebugEventsFollow(t *testing.T) {
	flags, _, up := busDaemon(t)
	var buf lines
	buf.ch = make(chan string, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	o := &debugOpts{stdout: &buf, loop: -1, follow: true, busTypes: "event.NodeUp", busQuery: "Node CONTAINS 'b'"}
	o.client = clientFor(t, flags)
	done := make(chan error, 1)
	go func() { done <- debugEvents(ctx, o, nil) }()
	waitSubscribed(t, up, 1)
	_ = up.Emit(event.NodeUp{Node: "node-a"})
	_ = up.Emit(event.NodeUp{Node: "node-b", Addr: "127.0.0.1:7700"})
	select {
	case l := <-buf.ch:
		if !strings.Contains(l, " #1 event.NodeUp {") || !strings.Contains(l, `"Node":"node-b"`) || strings.Contains(l, "node-a") {
			t.Fatalf("line %q", l)
		}
	case <-ctx.Done():
		t.Fatal("no line")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("interrupted follow: %v, want nil", err)
	}
	waitSubscribed(t, up, 0) // the server saw the client leave

	// --json: the server's lines.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	o = &debugOpts{stdout: &buf, loop: -1, follow: true, json: true, client: clientFor(t, flags)}
	go func() { done <- debugEvents(ctx2, o, nil) }()
	waitSubscribed(t, up, 1)
	_ = up.Emit(event.NodeUp{Node: "<n>"})
	select {
	case l := <-buf.ch:
		var e debug.BusEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Version != 1 || e.Type != "event.NodeUp" || !strings.Contains(l, `"Node":"<n>"`) {
			t.Fatalf("json line %q: %v", l, err)
		}
	case <-ctx2.Done():
		t.Fatal("no json line")
	}
	cancel2()
	<-done

	code, out, errOut := runCLI(t, append([]string{"debug", "events", "--types"}, flags...)...)
	if code != 0 || !strings.Contains(out, "event.Membership  1         0            true") || !strings.Contains(out, "event.NodeUp") {
		t.Fatalf("--types: exit %d\n%s%s", code, out, errOut)
	}
}

// The stream's end by the server is reported (exit 1, with its reason);
// bad combinations of flags and unknown types are usage errors (exit 2).
func TestDebugEventsFollowErrors(t *testing.T) {
	flags, bus, up := busDaemon(t)
	codes := make(chan int, 1)
	var errOut string
	go func() {
		var c int
		c, _, errOut = runCLI(t, append([]string{"debug", "events", "--follow"}, flags...)...)
		codes <- c
	}()
	waitSubscribed(t, up, 1)
	bus.Close()
	select {
	case c := <-codes:
		if c != 1 || !strings.Contains(errOut, "the event bus closed") {
			t.Fatalf("exit %d, %q: want 1 and the reason", c, errOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the CLI did not end with the stream")
	}

	flags, _, _ = busDaemon(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"events", "--follow", "--kind", "send"}, "loop events"},
		{[]string{"events", "--follow", "--last", "3"}, "loop events"},
		{[]string{"events", "--type", "event.NodeUp"}, "give --follow"},
		{[]string{"events", "--query", "Node = 'a'"}, "give --follow"},
		{[]string{"events", "--types", "--follow"}, "choose one"},
		{[]string{"events", "--follow", "--type", "event.Nope"}, "unknown event type"},
		{[]string{"events", "--follow", "--query", "Node >"}, "query"},
	} {
		code, out, errOut := runCLI(t, append(append([]string{"debug"}, tc.args...), flags...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d %q %q, want 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
}
