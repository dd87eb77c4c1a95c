package remote

import (
	"context"
	"testing"

	"github.com/actord/actord/actor"
)

// The monitor bookkeeping on its own, without a peer or a connection.
func TestWatches(t *testing.T) {
	sys := actor.NewSystem(actor.Config{Loops: 1, Manual: true, Watchdog: -1})
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	w := wireOf(sys)
	peer := &windowPeer{name: "b", epoch: func() uint64 { return 1 }}
	ref := func(slot uint32) actor.Ref { return w.RemoteRef(peer, wid(0, slot, 1, 0x30)) }
	t1, t2 := wid(0, 1, 1, 0x10), wid(0, 2, 1, 0x10)
	target1, target2 := ref(101), ref(102)
	w1, w2 := ref(1), ref(2) // stand-ins for local watchers: any distinct refs

	var ws watches
	if !ws.empty() || !ws.add(t1, target1, w1) || !ws.add(t1, target1, w2) || !ws.add(t2, target2, w1) {
		t.Fatal("a first monitor was not reported new")
	}
	if ws.add(t1, target1, w1) {
		t.Fatal("a second monitor by the same watcher was reported new (a second Monitor frame)")
	}
	// A Down from the peer reaches its watcher once.
	if got, ok := ws.remove(t1, w2); !ok || got != target1 {
		t.Fatalf("Down for w2: %v, %v", got, ok)
	}
	if _, ok := ws.remove(t1, w2); ok {
		t.Fatal("a Down was delivered twice")
	}
	// A loss fires every monitor left, once.
	fired := 0
	for _, m := range ws.lost() {
		fired += len(m.watchers)
	}
	if fired != 2 || !ws.empty() {
		t.Fatalf("the loss fired %d monitors, want 2; empty after: %v", fired, ws.empty())
	}
	// A Monitor whose frame then failed finds the loss answered it already.
	if _, ok := ws.remove(t2, w1); ok {
		t.Fatal("a monitor the loss fired was still registered")
	}
	if len(ws.lost()) != 0 {
		t.Fatal("a second loss fired monitors again")
	}
}
