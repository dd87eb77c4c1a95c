package driver

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/appreg"
)

// handRunner's HandOver ends when the test sends it "finish": its done
// runs later, on the driver's loop, as the daemon's does (a promise's
// continuation).
type handRunner struct {
	ev     chan string
	called chan struct{}
	done   func(*actor.Context, []byte, bool)
}

func (r *handRunner) Start(_ *actor.Context, g appreg.Grant) { r.ev <- "start " + g.App }
func (r *handRunner) Stop(_ *actor.Context, app string)      { r.ev <- "stop " + app }
func (r *handRunner) HandOver(_ *actor.Context, _ string, done func(*actor.Context, []byte, bool)) {
	r.done = done
	r.called <- struct{}{}
}
func (r *handRunner) Handle(c *actor.Context, msg any) {
	if msg == "finish" && r.done != nil {
		r.done(c, nil, true)
	}
}

// TestOffLoopHandOverDoneWaitsForTheWrite: with OffLoop, a handover's
// done that comes while a Ready runs on the pool proposes the release only
// once the Ready has ended (run with -race: without the queueing, the
// release and the Ready use the replica at once).
func TestOffLoopHandOverDoneWaitsForTheWrite(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Logger: slog.New(slog.DiscardHandler), OnCrash: func(*actor.Crash) {}})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	st := &gateStore{blocked: make(chan struct{}, 1), gate: make(chan struct{})}
	var open sync.Once
	openGate := func() { open.Do(func() { close(st.gate) }) }
	defer openGate() // before the system's shutdown, which waits for the write
	r := &handRunner{ev: make(chan string, 16), called: make(chan struct{}, 1)}
	// A one-member registry: the release goes to b, which it does not
	// know, and is never applied; only its proposal matters here.
	cfg := Config{Replica: appreg.Config{ID: 1, Members: []appreg.Member{{ID: 1, Node: "a"}}, Store: st,
		Timing:       appreg.Timing{Lease: 5 * time.Second, RenewEvery: 100 * time.Millisecond, Margin: 20 * time.Millisecond},
		TickInterval: 10 * time.Millisecond, Incarnation: 1}, Runner: r, OffLoop: true}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := sys.Spawn(ctx, New(cfg))
	if err != nil {
		t.Fatal(err)
	}
	propose := func(app string) error {
		for {
			_, err := sys.Ask(ctx, d, Propose{Cmd: appreg.Command{Op: appreg.OpDeploy, App: app}})
			if !errors.Is(err, appreg.ErrNoLeader) {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond): // no leader yet: polling
			}
		}
	}
	if err := propose("x"); err != nil {
		t.Fatal(err)
	}
	if e := <-r.ev; e != "start x" {
		t.Fatal(e)
	}
	relErr := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, Release{App: "x", To: "b"}); relErr <- err }()
	<-r.called
	st.armed.Store(true)
	proposed := make(chan error, 1)
	go func() { proposed <- propose("y") }() // a write, which blocks on the pool
	select {
	case <-st.blocked:
	case <-ctx.Done():
		t.Fatal("no store write")
	}
	if err := sys.Send(d, "finish"); err != nil { // done runs on the loop while the Ready is on the pool
		t.Fatal(err)
	}
	// The done is in the driver's queue once a status asked after it is
	// (both wait for the write): then the write ends.
	status := make(chan error, 1)
	go func() { _, err := sys.Ask(ctx, d, GetStatus{}); status <- err }()
	select {
	case err := <-relErr:
		t.Fatalf("the release was answered while the write ran: %v", err)
	case <-status:
		t.Fatal("the status was answered while the write ran")
	case <-time.After(100 * time.Millisecond): // a negative check: nothing answered while the write is held
	}
	openGate()
	if err := <-relErr; err != nil {
		t.Fatalf("release: %v", err)
	}
	if err := <-status; err != nil {
		t.Fatal(err)
	}
	if err := <-proposed; err != nil {
		t.Fatal(err)
	}
}
