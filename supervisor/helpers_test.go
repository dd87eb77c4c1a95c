package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/loop"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's process-wide worker pool (remote_test.go), started at
		// package init.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

const waitFor = 5 * time.Second

var errBoom = errors.New("boom")

// recorder is a log of lifecycle lines shared by the probes of a test, plus
// the current ref of each probe (set at every start).
type recorder struct {
	mu       sync.Mutex
	lines    []string
	refs     map[string]actor.Ref
	failing  map[string]int // id -> number of next starts that fail
	ignoring map[string]int // id -> number of next starts that return ErrIgnore
	notify   chan string
}

func newRecorder() *recorder {
	return &recorder{refs: map[string]actor.Ref{}, failing: map[string]int{}, ignoring: map[string]int{},
		notify: make(chan string, 1024)}
}

func (r *recorder) add(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	select {
	case r.notify <- line:
	default:
	}
}

// take returns the lines logged since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	return out
}

func (r *recorder) ref(id string) actor.Ref {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refs[id]
}

func (r *recorder) failNext(id string, n int) {
	r.mu.Lock()
	r.failing[id] = n
	r.mu.Unlock()
}

func (r *recorder) ignoreNext(id string, n int) {
	r.mu.Lock()
	r.ignoring[id] = n
	r.mu.Unlock()
}

// waitLine waits for a line to be logged (real-time tests).
func (r *recorder) waitLine(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case l := <-r.notify:
			if l == want {
				return
			}
		case <-deadline:
			t.Fatalf("timed out waiting for %q", want)
		}
	}
}

func reasonName(err error) string {
	switch {
	case err == nil:
		return "normal"
	case errors.Is(err, actor.ErrRestart):
		return "restart"
	case errors.Is(err, actor.ErrShutdown):
		return "shutdown"
	case errors.Is(err, actor.ErrKilled):
		return "killed"
	case errors.Is(err, errBoom):
		return "boom"
	}
	return err.Error()
}

// probe is a worker that logs "start id" and "stop id reason", crashes on
// "crash", stops itself on an exitMsg, answers "ping" with "pong", blocks
// its loop on a blockMsg, and fails its start ("startfail id") or ignores
// it ("ignore id", ErrIgnore) when told to.
type probe struct {
	id  string
	rec *recorder
}

type exitMsg struct{ reason error }
type blockMsg struct{ entered, release chan struct{} }

func probeF(rec *recorder, id string) actor.Factory {
	return func() actor.Actor { return &probe{id: id, rec: rec} }
}

func (p *probe) Start(c *actor.Context) error {
	p.rec.mu.Lock()
	fail, ign := p.rec.failing[p.id], p.rec.ignoring[p.id]
	if fail > 0 {
		p.rec.failing[p.id] = fail - 1
	} else if ign > 0 {
		p.rec.ignoring[p.id] = ign - 1
	}
	p.rec.mu.Unlock()
	if fail > 0 {
		p.rec.add("startfail " + p.id)
		panic("start-boom " + p.id)
	}
	if ign > 0 {
		p.rec.add("ignore " + p.id)
		return fmt.Errorf("probe %s: %w", p.id, ErrIgnore)
	}
	p.rec.mu.Lock()
	p.rec.refs[p.id] = c.Self()
	p.rec.mu.Unlock()
	p.rec.add("start " + p.id)
	return nil
}

func (p *probe) Terminate(_ *actor.Context, reason error) {
	p.rec.add("stop " + p.id + " " + reasonName(reason))
}

func (p *probe) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case string:
		switch m {
		case "crash":
			panic("crash " + p.id)
		case "ping":
			return "pong " + p.id, nil
		}
	case exitMsg:
		return nil, c.Stop(c.Self(), m.reason)
	case blockMsg:
		close(m.entered)
		<-m.release
		return nil, nil
	}
	return nil, actor.Unhandled(msg)
}

// driver runs functions inside an actor.
type driver struct{}
type doMsg func(c *actor.Context) (any, error)

func (driver) Receive(c *actor.Context, msg any) (any, error) {
	if f, ok := msg.(doMsg); ok {
		return f(c)
	}
	if d, ok := msg.(actor.Down); ok {
		return d, nil
	}
	return nil, actor.Unhandled(msg)
}

// reports collects supervisor reports from the event hook.
type reports struct {
	mu   sync.Mutex
	list []*Report
	ch   chan *Report
}

func newReports() *reports { return &reports{ch: make(chan *Report, 1024)} }

func (r *reports) hook(e *actor.Event) {
	if e.Kind != actor.EventReport {
		return
	}
	rep, ok := e.Msg.(*Report)
	if !ok {
		return
	}
	r.mu.Lock()
	r.list = append(r.list, rep)
	r.mu.Unlock()
	select {
	case r.ch <- rep:
	default:
	}
}

func (r *reports) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rep := range r.list {
		out = append(out, rep.Supervisor+":"+rep.Kind.String()+":"+rep.ChildID)
	}
	return out
}

func (r *reports) wait(t *testing.T, kind ReportKind) *Report {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case rep := <-r.ch:
			if rep.Kind == kind {
				return rep
			}
		case <-deadline:
			t.Fatalf("timed out waiting for a %v report", kind)
		}
	}
}

var quiet = slog.New(slog.DiscardHandler)

// manualSystem is a deterministic system: no goroutines, a fake clock.
func manualSystem(t testing.TB, loops int, hook actor.Hook) (*actor.System, *loop.FakeClock) {
	t.Helper()
	clk := loop.NewFakeClock(time.Unix(1_000_000, 0))
	s := actor.NewSystem(actor.Config{Loops: loops, Manual: true, Clock: clk, Hook: hook,
		Logger: quiet, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { shutdown(t, s) })
	return s, clk
}

func realSystem(t testing.TB, loops int, hook actor.Hook) *actor.System {
	t.Helper()
	s := actor.NewSystem(actor.Config{Loops: loops, Hook: hook, Logger: quiet, OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { shutdown(t, s) })
	return s
}

func shutdown(t testing.TB, s *actor.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func spawn(t testing.TB, s *actor.System, f actor.Factory, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	r, err := s.Spawn(ctx, f, opts...)
	if err != nil {
		t.Fatalf("Spawn: %v", err)
	}
	return r
}

func ask(t testing.TB, s *actor.System, to actor.Ref, msg any) (any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	v, err := s.Ask(ctx, to, msg)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ask %v %T: no reply", to, msg)
	}
	return v, err
}

// spawnSup spawns a root supervisor (quiet logger unless set).
func spawnSup(t testing.TB, s *actor.System, spec Spec, opts ...actor.SpawnOption) actor.Ref {
	t.Helper()
	if spec.Logger == nil {
		spec.Logger = quiet
	}
	return spawn(t, s, New(spec), opts...)
}

func send(t testing.TB, s *actor.System, to actor.Ref, msg any) {
	t.Helper()
	if err := s.Send(to, msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func idle(s *actor.System) { s.RunUntilIdle(1 << 20) }

func expectLines(t testing.TB, rec *recorder, want ...string) {
	t.Helper()
	got := rec.take()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("log:\n got  %q\n want %q", got, want)
	}
}

func children(t testing.TB, s *actor.System, sup actor.Ref) []ChildInfo {
	t.Helper()
	v, err := ask(t, s, sup, WhichChildren{})
	if err != nil {
		t.Fatalf("WhichChildren: %v", err)
	}
	return v.([]ChildInfo)
}

func alive(t testing.TB, s *actor.System, r actor.Ref) bool {
	t.Helper()
	_, err := ask(t, s, r, WhichChildren{})
	if err != nil && !errors.Is(err, actor.ErrDead) && !errors.Is(err, actor.ErrUnknownMessage) {
		t.Fatalf("alive? %v", err)
	}
	return !errors.Is(err, actor.ErrDead)
}

func workers(rec *recorder, ids ...string) []ChildSpec {
	out := make([]ChildSpec, len(ids))
	for i, id := range ids {
		out[i] = Worker(id, probeF(rec, id))
	}
	return out
}

var _ = fmt.Sprint

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func slogJSON(b *syncBuf) *slog.Logger { return slog.New(slog.NewJSONHandler(b, nil)) }

// watcherF forwards the Downs it gets to downs.
func watcherF(downs chan<- actor.Down) actor.Factory {
	return func() actor.Actor { return watcher{downs} }
}

type watcher struct{ downs chan<- actor.Down }

func (w watcher) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Down:
		w.downs <- m
		return nil, nil
	case doMsg:
		return m(c)
	}
	return nil, actor.Unhandled(msg)
}

// waitUntil polls cond (every millisecond) until it holds, failing the test
// after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitFor, what)
		}
		time.Sleep(time.Millisecond)
	}
}
