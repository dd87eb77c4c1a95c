package ratelog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTest(cfg Config) (*slog.Logger, *bytes.Buffer, *fakeClock) {
	var buf bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	cfg.Now = clk.now
	l := slog.New(New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}), cfg))
	return l, &buf, clk
}

func lines(b *bytes.Buffer) []string {
	s := strings.TrimSpace(b.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestBurstPerSourceAndMessage(t *testing.T) {
	l, buf, clk := newTest(Config{Interval: time.Second, Burst: 2})
	for range 100 {
		l.Warn("junk packet", "remote_addr", "10.0.0.1:5")
		l.Warn("junk packet", "remote_addr", "10.0.0.2:5")
		l.Warn("other problem", "remote_addr", "10.0.0.1:5")
	}
	if got := len(lines(buf)); got != 6 {
		t.Fatalf("%d lines for 300 records of 3 keys with burst 2, want 6:\n%s", got, buf)
	}
	buf.Reset()
	clk.t = clk.t.Add(time.Second)
	l.Warn("junk packet", "remote_addr", "10.0.0.1:5")
	ls := lines(buf)
	if len(ls) != 1 || !strings.Contains(ls[0], "suppressed=98") {
		t.Fatalf("after the window, want one line counting 98 suppressed, got %q", ls)
	}
}

func TestBoundAttrsAreSources(t *testing.T) {
	l, buf, _ := newTest(Config{Interval: time.Second, Burst: 1})
	a := l.With("peer", "a")
	b := l.With("peer", "b")
	for range 10 {
		a.Warn("down")
		b.Warn("down")
	}
	if got := len(lines(buf)); got != 2 {
		t.Fatalf("%d lines, want one per bound peer:\n%s", got, buf)
	}
}

func TestDebugIsNotLimited(t *testing.T) {
	l, buf, _ := newTest(Config{Burst: 1})
	for range 10 {
		l.Debug("chatter")
	}
	if got := len(lines(buf)); got != 10 {
		t.Fatalf("%d debug lines, want 10", got)
	}
}

func TestKeysAreBounded(t *testing.T) {
	l, buf, _ := newTest(Config{Interval: time.Hour, Burst: 1, MaxKeys: 16})
	for i := range 10000 {
		l.Error("junk", "remote_addr", fmt.Sprintf("10.0.%d.%d:1", i/256, i%256))
	}
	h := l.Handler().(*Handler)
	h.state.mu.Lock()
	n := len(h.state.win)
	h.state.mu.Unlock()
	if n > 17 {
		t.Fatalf("%d keys remembered, want at most MaxKeys+1", n)
	}
	// 16 sources pass once each, then every new source shares one overflow key.
	if got := len(lines(buf)); got != 17 {
		t.Fatalf("%d lines from 10000 sources, want 17", got)
	}
}

func TestWrapIsIdempotent(t *testing.T) {
	l := Wrap(slog.New(slog.DiscardHandler), Config{})
	if Wrap(l, Config{}) != l {
		t.Fatal("wrapping a limited logger again added a second limiter")
	}
}
