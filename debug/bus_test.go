package debug_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/debug"
	"github.com/actord/actord/event"
)

type busServer struct {
	bus    *event.Bus
	srv    *debug.Server
	client *debug.Client
	token  string
	tokenF string
	tr     *http.Transport
}

// startBusServer starts a debug server over a fresh bus.
func startBusServer(t *testing.T, cfg debug.ServerConfig) *busServer {
	t.Helper()
	bus := event.New(event.Config{})
	cfg.Bus = bus
	cfg.TokenFile = filepath.Join(t.TempDir(), "debug.token")
	cfg.Logger = quietLogger()
	srv, err := debug.NewServer(debug.New(debug.Config{Loops: 1}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := debug.NewClient(srv.Addr(), cfg.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	cl.HTTP = &http.Client{Transport: tr}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		_ = srv.Close()
		bus.Close()
	})
	return &busServer{bus: bus, srv: srv, client: cl, token: cl.Token, tokenF: cfg.TokenFile, tr: tr}
}

// eventually polls cond until it holds, or fails the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// subscribers counts the live subscriptions of the bus (the streams'),
// from the moment Subscribe admits them: wait for an emitter's Subscribers
// (installed ones) before emitting.
func subscribers(b *event.Bus) int { return b.Subscriptions() }

// A stream delivers the events of the types it names, matching its query,
// rendered as JSON (errors as their text), numbered, in emit order.
func TestBusFollowStreams(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{})
	up := mustEmitter[event.NodeUp](t, s.bus)
	down := mustEmitter[event.NodeDown](t, s.bus)
	opened := mustEmitter[event.ConnOpened](t, s.bus)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan debug.BusEvent, 16)
	errc := make(chan error, 1)
	go func() {
		errc <- s.client.FollowBus(ctx, debug.BusQuery{Types: []string{"event.NodeUp", "event.NodeDown"}, Query: "Node = 'b'"},
			func(e debug.BusEvent) bool { got <- e; return len(got) < 2 })
	}()
	eventually(t, "the stream's subscription", func() bool { return up.Subscribers() == 1 })
	_ = up.Emit(event.NodeUp{Node: "a", Addr: "127.0.0.1:1"})                         // another node
	_ = opened.Emit(event.ConnOpened{Node: "b"})                                      // another type
	_ = up.Emit(event.NodeUp{Node: "b", Addr: "127.0.0.1:2"})                         // 1
	_ = down.Emit(event.NodeDown{Node: "b", Reason: errors.New("heartbeat timeout")}) // 2
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	first, second := <-got, <-got
	if first.N != 1 || first.Type != "event.NodeUp" || !strings.Contains(string(first.Event), `"Addr":"127.0.0.1:2"`) {
		t.Fatalf("first line %+v (event %s)", first, first.Event)
	}
	if second.N != 2 || second.Type != "event.NodeDown" || !strings.Contains(string(second.Event), `"Reason":"heartbeat timeout"`) {
		t.Fatalf("second line %+v (event %s)", second, second.Event)
	}
	eventually(t, "the subscription to end with the stream", func() bool { return subscribers(s.bus) == 0 })
}

func mustEmitter[T any](t *testing.T, b *event.Bus) *event.Emitter[T] {
	t.Helper()
	em, err := event.NewEmitter[T](b)
	if err != nil {
		t.Fatal(err)
	}
	return em
}

// Bad input is refused with 400 and a reason; without a bus, 404; without
// the token, 401; nothing subscribes.
func TestBusFollowBadInput(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{})
	mustEmitter[event.NodeUp](t, s.bus)
	ctx := context.Background()
	for _, q := range []debug.BusQuery{
		{Types: []string{"event.Nope"}},
		{Query: "Node ="},
		{Types: []string{"event.NodeUp"}, Query: "Nope = 'x'"}, // NodeUp has no such field, nor tags
		{Query: "Node = '" + strings.Repeat("x", 5000) + "'"},
		{Types: []string{strings.Repeat("event.NodeUp,", 100)}},
	} {
		err := s.client.FollowBus(ctx, q, func(debug.BusEvent) bool { return false })
		if !errors.Is(err, debug.ErrBadRequest) {
			t.Errorf("%+.60v: %v, want a bad request", q, err)
		}
	}
	err := s.client.FollowBus(ctx, debug.BusQuery{Types: []string{"event.Nope"}}, func(debug.BusEvent) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "event.NodeUp") {
		t.Errorf("an unknown type's error does not list the known ones: %v", err)
	}
	req, _ := http.NewRequest("GET", "http://"+s.srv.Addr()+"/debug/v1/bus/follow", nil)
	resp, err := (&http.Client{Transport: s.tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	if n := subscribers(s.bus); n != 0 {
		t.Fatalf("%d subscriptions left by refused requests", n)
	}

	tokenF := filepath.Join(t.TempDir(), "t")
	noBus, err := debug.NewServer(debug.New(debug.Config{Loops: 1}), debug.ServerConfig{TokenFile: tokenF, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer noBus.Close()
	cl, _ := debug.NewClient(noBus.Addr(), tokenF)
	cl.HTTP = &http.Client{Transport: s.tr}
	var se *debug.StatusError
	if err := cl.FollowBus(ctx, debug.BusQuery{}, func(debug.BusEvent) bool { return false }); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("a server without a bus: %v, want 404", err)
	}
	if _, err := cl.BusTypes(ctx); !errors.As(err, &se) || se.Code != http.StatusNotFound {
		t.Errorf("bus types without a bus: %v, want 404", err)
	}
}

// GET /debug/v1/bus/types lists the bus's types with their counts.
func TestBusTypes(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{})
	em, err := event.NewEmitter[event.Membership](s.bus, event.Stateful())
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	sub, err := event.Subscribe[event.NodeUp](s.bus)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	r, err := s.client.BusTypes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []debug.BusType{{Type: "event.Membership", Emitters: 1, Stateful: true}, {Type: "event.NodeUp", Subscribers: 1}}
	if len(r.Types) != 2 || r.Types[0] != want[0] || r.Types[1] != want[1] || r.Version != debug.ProtocolVersion {
		t.Fatalf("got %+v, want %+v", r, want)
	}
}

// gatedWriter is a ResponseWriter whose writes wait for a gate: a client
// that does not read, without a network in between.
type gatedWriter struct {
	header  http.Header
	entered chan struct{} // closed at the first write
	gate    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (w *gatedWriter) Header() http.Header { return w.header }
func (w *gatedWriter) WriteHeader(int)     {}
func (w *gatedWriter) Flush()              {}
func (w *gatedWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.gate
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// Hardening: a client that stops reading costs the server its stream's
// buffer and no more. While the handler is stuck writing, the bus drops
// the stream's subscription at BusBuffer events (emitters are never held
// up); once the write goes through, the client gets what was buffered and
// a last line saying it was cut off.
func TestBusFollowCutsOffSlowClient(t *testing.T) {
	const buffer = 4
	s := startBusServer(t, debug.ServerConfig{BusBuffer: buffer})
	em := mustEmitter[event.NodeUp](t, s.bus)
	w := &gatedWriter{header: http.Header{}, entered: make(chan struct{}), gate: make(chan struct{})}
	req, _ := http.NewRequest("GET", "/debug/v1/bus/follow", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	done := make(chan struct{})
	go func() { defer close(done); s.srv.Handler().ServeHTTP(w, req) }()
	eventually(t, "the stream's subscription", func() bool { return em.Subscribers() == 1 })
	_ = em.Emit(event.NodeUp{Node: "n0"}) // taken by the handler, which then blocks writing it
	<-w.entered
	for i := 1; i <= 100; i++ { // the emitter is never held up
		if err := em.Emit(event.NodeUp{Node: "n" + string(rune('0'+i%10))}); err != nil {
			t.Fatal(err)
		}
	}
	if n := subscribers(s.bus); n != 0 {
		t.Fatalf("the slow stream's subscription is still there (%d), holding more than its buffer", n)
	}
	close(w.gate)
	<-done
	lines := strings.Split(strings.TrimSpace(w.buf.String()), "\n")
	if len(lines) != 1+buffer+1 {
		t.Fatalf("%d lines, want the first event, %d buffered and the end:\n%s", len(lines), buffer, w.buf.String())
	}
	var end debug.BusEvent
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &end); err != nil || !strings.Contains(end.End, "cut off") || end.Event != nil {
		t.Fatalf("last line %s (%v): want the cut-off reason", lines[len(lines)-1], err)
	}
}

// Hardening: at most MaxBusStreams streams at once; the next gets 503 and
// subscribes nothing; a stream's subscription ends when its client leaves.
func TestBusStreamsBounded(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range debug.MaxBusStreams {
		wg.Go(func() {
			_ = s.client.FollowBus(ctx, debug.BusQuery{}, func(debug.BusEvent) bool { return true })
		})
	}
	eventually(t, "every stream's subscription", func() bool { return s.bus.Wildcards() == debug.MaxBusStreams })
	var se *debug.StatusError
	over, stop := context.WithTimeout(context.Background(), 10*time.Second) // served by mistake: ends, and fails below
	defer stop()
	err := s.client.FollowBus(over, debug.BusQuery{}, func(debug.BusEvent) bool { return true })
	if !errors.As(err, &se) || se.Code != http.StatusServiceUnavailable {
		t.Fatalf("stream %d: %v, want 503", debug.MaxBusStreams+1, err)
	}
	if n := s.bus.Wildcards(); n != debug.MaxBusStreams {
		t.Fatalf("%d subscriptions, want %d", n, debug.MaxBusStreams)
	}
	cancel()
	wg.Wait()
	eventually(t, "the streams' subscriptions to end", func() bool { return s.bus.Wildcards() == 0 })
}

// A stream outlives the server's write timeout: the deadline is renewed
// per batch.
func TestBusFollowOutlivesWriteTimeout(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{Limits: debug.HTTPLimits{WriteTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond}})
	em := mustEmitter[event.NodeUp](t, s.bus)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		errc <- s.client.FollowBus(ctx, debug.BusQuery{}, func(debug.BusEvent) bool {
			return time.Since(start) < 500*time.Millisecond // an event well past both timeouts ends it
		})
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil || time.Since(start) < 500*time.Millisecond {
				t.Fatalf("the stream ended after %v: %v", time.Since(start), err)
			}
			return
		case <-tick.C:
			_ = em.Emit(event.NodeUp{Node: "x"})
		}
	}
}

// Closing the bus ends the stream with a reason the client reports.
func TestBusFollowEndsWithBus(t *testing.T) {
	s := startBusServer(t, debug.ServerConfig{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.client.FollowBus(context.Background(), debug.BusQuery{}, func(debug.BusEvent) bool { return true })
	}()
	eventually(t, "the stream's subscription", func() bool { return s.bus.Wildcards() == 1 })
	s.bus.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, debug.ErrStreamEnded) || !strings.Contains(err.Error(), "bus closed") {
			t.Fatalf("FollowBus = %v, want the end of the stream, the bus closed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end with the bus")
	}
}
