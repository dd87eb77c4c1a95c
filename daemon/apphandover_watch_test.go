package daemon

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/internal/appreg"
	"github.com/actord/actord/internal/appreg/driver"
)

// reassigned tells an assignment past the release's generation (or a
// removal) from a release and from an application not known yet.
func TestHandOverReassigned(t *testing.T) {
	st := func(a ...appreg.App) driver.Status { return driver.Status{Apps: a} }
	for _, tc := range []struct {
		name string
		st   driver.Status
		want bool
	}{
		{"not listed (a replica behind)", st(), false},
		{"released, not moved on", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 5, HandoverGen: 5}), false},
		{"assigned afresh", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 6, HandoverGen: 5}), true},
		{"assigned instead of the release", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 5, HandoverGen: 3}), true},
		{"not moved yet", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 4, HandoverGen: 3}), false},
		// Assigned and released again within one poll: the release of 5
		// is no one's now.
		{"released again further", st(appreg.App{Name: "x", Desired: appreg.Running, Gen: 7, HandoverGen: 7}), true},
		{"removed", st(appreg.App{Name: "x", Desired: appreg.Removed, Gen: 5, HandoverGen: 5}), true},
		{"stopped", st(appreg.App{Name: "x", Desired: appreg.Stopped, Gen: 5, HandoverGen: 5}), true},
	} {
		if got := reassigned(tc.st, "x", 5); got != tc.want {
			t.Errorf("%s: reassigned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A watch of held children ends when its daemon stops, and the stop
// waits for it: no goroutine of the daemon outlives it.
func TestHandOverWatchJoinedOnStop(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	d := start(t, cfg)
	// A child whose gateway is not known: its query fails, and the watch
	// asks again until its end.
	w := d.watchHandOff("shop", 3, []heldKid{{node: "nowhere", ref: d.gw.ref}})
	select {
	case <-w.done:
		t.Fatalf("the watch ended by itself: %v", w.err)
	case <-time.After(100 * time.Millisecond): // it goes on: a failed query is no outcome
	}
	if err := d.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.done:
	default:
		t.Fatal("the daemon stopped before the watch ended")
	}
	if w.err == nil {
		t.Error("a watch ended by the daemon's stop reported the children adopted")
	}
}

// A drop of held children (a handover failed) is joined when the daemon
// stops, as the watches are.
func TestHandOverDropJoinedOnStop(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	d := start(t, cfg)
	entered, gate := make(chan struct{}), make(chan struct{})
	var dropped atomic.Bool
	dropHeldHook = func(heldKid) {
		close(entered)
		<-gate
		dropped.Store(true)
	}
	defer func() { dropHeldHook = nil }()
	d.dropHeld([]heldKid{{node: "nowhere", ref: d.gw.ref}}, nil)
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- d.Shutdown(t.Context()) }()
	select {
	case err := <-stopped:
		t.Fatalf("the daemon stopped (%v) before its drop ended", err)
	case <-time.After(2 * time.Second): // it waits for the drop
	}
	close(gate)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if !dropped.Load() {
		t.Error("the daemon stopped before its drop ended")
	}
}

// A watch's outcomes from its answers: a failed query (of a gateway, or
// of the registry) is asked again, not taken as an outcome; children seen
// adopted win over a reassignment seen in the same round; a reassignment
// with children still held drops them.
func TestHandOverWatchOutcomes(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Apps = fastApps("a")
	d := start(t, cfg)
	kid := heldKid{node: "nowhere", ref: d.gw.ref}
	released := driver.Status{Apps: []appreg.App{{Name: "shop", Desired: appreg.Running, Gen: 4, HandoverGen: 4}}}
	moved := driver.Status{Apps: []appreg.App{{Name: "shop", Desired: appreg.Running, Gen: 5, HandoverGen: 4}}}
	fail := errors.New("test: no answer")
	for _, tc := range []struct {
		name   string
		held   []any // the gateway's answers, one a round (the last repeated); an error fails the query
		status []any // the registry's, the same
		want   error
	}{
		// Each failed round must differ from its wrong reading: a failed
		// gateway query taken as "adopted" would end the watch at once
		// (nil), a failed registry query taken as a reassignment would
		// drop the children (errReassigned); each ends otherwise only at
		// the third round.
		{"a failed gateway query is asked again", []any{fail, fail, true}, []any{released, released, moved}, errReassigned},
		{"a failed registry query is asked again", []any{true, true, false}, []any{fail, fail, moved}, nil},
		{"adopted wins over reassigned", []any{false}, []any{moved}, nil},
		{"still held when reassigned", []any{true, true}, []any{released, moved}, errReassigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			round := map[string]int{}
			next := func(what string, xs []any) any {
				mu.Lock()
				defer mu.Unlock()
				i := min(round[what], len(xs)-1)
				round[what]++
				return xs[i]
			}
			watchHeldHook = func(heldKid) (any, error) {
				v := next("held", tc.held)
				if err, ok := v.(error); ok {
					return nil, err
				}
				return v, nil
			}
			watchStatusHook = func() (driver.Status, error) {
				v := next("status", tc.status)
				if err, ok := v.(error); ok {
					return driver.Status{}, err
				}
				return v.(driver.Status), nil
			}
			defer func() { watchHeldHook, watchStatusHook = nil, nil }()
			w := d.watchHandOff("shop", 3, []heldKid{kid})
			select {
			case <-w.done:
			case <-time.After(20 * time.Second):
				t.Fatal("the watch did not end")
			}
			if !errors.Is(w.err, tc.want) || (tc.want == nil) != (w.err == nil) {
				t.Errorf("watch: %v, want %v", w.err, tc.want)
			}
			mu.Lock()
			rounds := round["held"] // one kid: one ask a round
			mu.Unlock()
			if n := max(len(tc.held), len(tc.status)); n > 2 && rounds < n {
				t.Errorf("the watch ended after %d rounds, want %d (a failed query is asked again)", rounds, n)
			}
		})
	}
}
