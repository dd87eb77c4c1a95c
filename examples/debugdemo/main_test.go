package main

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/debug"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDemo runs the demo, attaches a debugger, sees the payments crash and
// the stuck mailer, patches the mailer and sees it send mail.
func TestDemo(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- demoWith(ctx, "127.0.0.1:0", tokenFile, 2*time.Millisecond, io.Discard, ready) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := <-ready
	cl, err := debug.NewClient(addr, tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(ctx, 20*time.Second)
	defer fcancel()
	// Follow until a payment crash and a refused mail have both been seen.
	var crashed, refused bool
	err = cl.Follow(fctx, debug.EventQuery{Loop: -1}, func(e debug.Event) bool {
		crashed = crashed || (e.Kind == "crash" && strings.Contains(e.Error, "negative amount"))
		refused = refused || (e.Type == "main.Mail" && e.Error == "mailer: paused")
		return !(crashed && refused)
	})
	if err != nil || !crashed || !refused {
		t.Fatalf("follow: %v, crashed %v, refused %v", err, crashed, refused)
	}
	if _, err := cl.Patch(fctx, "shop/mailer", []byte(`{"paused":false,"sent":0}`)); err != nil {
		t.Fatal(err)
	}
	err = cl.Follow(fctx, debug.EventQuery{Actor: "shop/mailer", Loop: -1, Kinds: []string{"send"}}, func(e debug.Event) bool {
		return e.Outcome != "ok" // stop at the first mail sent
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := cl.State(fctx, "shop/mailer")
	if err != nil || !strings.Contains(string(st.State), `"paused": false`) {
		t.Fatalf("mailer state %s, %v", st.State, err)
	}
}
