package sim

import (
	"testing"
	"time"
)

// Incarnations and links (found in review; each failed before link halves
// were marked with the incarnation that made them).

// b_old's Link reaches a while a's link to b is idle
// (tagged with the next epoch E); a dials b because of it, but b has
// crashed and restarted meanwhile, so b_new welcomes dial E. b_new then
// dials a. a's half of the link with b_old's actor must end (it did not
// when the replacement ended links by epoch, up to E-1).
func TestIncarnationOldHalfEnds(t *testing.T) {
	w := New(Config{Seed: 11, Timeline: 4000})
	defer w.Close()
	a, b := w.MustAddNode("a", nil), w.MustAddNode("b", nil)
	wa := newWatcher()
	W := spawnOrFail(t, a, wa)
	_ = a.Send(W, watchTrap{})
	X := spawnOrFail(t, b, newWatcher())
	Wb := refOrFail(t, w, W, a, b)
	Xa := refOrFail(t, w, X, b, a)
	w.SetLatency(b, a, 30*time.Millisecond, 30*time.Millisecond)
	// b dials a (one-way: a has no reason to dial b).
	_ = b.Send(Wb, "hello")
	w.Run(550 * time.Millisecond)
	_ = b.Send(X, watchLink{Wb})
	w.Run(5 * time.Millisecond) // the Link is in flight (30 ms)
	w.Crash(b)
	if err := w.Restart(b); err != nil {
		t.Fatal(err)
	}
	w.Run(200 * time.Millisecond) // a gets the Link, dials b: b_new welcomes
	Wb2 := refOrFail(t, w, W, a, b)
	_ = b.Send(Wb2, "hello again") // b_new dials a: it replaces b_old there
	w.Run(10 * time.Second)
	t.Logf("exits at a: %v", wa.exits)
	if len(wa.exits[Xa]) == 0 {
		t.Errorf("a's half of the link with b_old's actor was never ended\n%s", timeline(w))
	}
}

// b restarts; a links to an actor of b_new over a's dial
// (welcomed by b_new) before b_new has dialed a; then b_old's silent inbound
// connection at a times out. The link with b_new's live actor must stay on
// both sides (the close ended every link with b, on a's side only, when
// only a Hello, not a Welcome, replaced an incarnation).
func TestIncarnationOldCloseKeepsNewLinks(t *testing.T) {
	w := New(Config{Seed: 12, Timeline: 4000})
	defer w.Close()
	a, b := w.MustAddNode("a", nil), w.MustAddNode("b", nil)
	wa := newWatcher()
	W := spawnOrFail(t, a, wa)
	Wb := refOrFail(t, w, W, a, b)
	w.SetLatency(b, a, 200*time.Millisecond, 200*time.Millisecond)
	_ = b.Send(Wb, "hello") // b_old dials a
	w.Run(2 * time.Second)
	w.Crash(b)
	w.Run(250 * time.Millisecond)
	if err := w.Restart(b); err != nil {
		t.Fatal(err)
	}
	w.Run(50 * time.Millisecond)
	wy := newWatcher()
	Y := spawnOrFail(t, b, wy)
	_ = b.Send(Y, watchTrap{})
	Ya := refOrFail(t, w, Y, b, a)
	_ = a.Send(W, watchLink{Ya}) // W traps exits and links to Y on b_new
	w.Run(5 * time.Second)
	Wb2 := refOrFail(t, w, W, a, b)
	t.Logf("exits at a: %v; exits at b_new: %v", wa.exits, wy.exits)
	if len(wa.exits[Ya]) != 0 && len(wy.exits[Wb2]) == 0 {
		t.Errorf("a ended its half of the link with b_new's live actor; b_new kept its half\n%s", timeline(w))
	}
}
