package remote

import (
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/internal/memnet"
)

// A message between two nodes on the in-memory network allocates nothing
// on its way, sealing and writing included: the simulator runs this path
// for every message, and the garbage it made was a tenth of its CPU
// time. int64s below 256 are boxed without allocating, and decoded on the
// network goroutine.
func TestMemSendAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under the race detector")
	}
	w := newMemWorld(t, 1, "10.0.0.1", "10.0.0.2")
	defer w.close()
	w.nw.Trace(nil) // the test's formatted trace allocates
	w.nw.TraceData(func(time.Time, *memnet.Conn, int) {})
	got := 0
	sink := w.spawnOn(1, 0, func(c *actor.Context, msg any) (any, error) {
		if msg == any(int64(7)) {
			got++
		}
		return nil, nil
	})
	send := func() {
		want := got + 1
		if err := w.sys[0].Send(sink, int64(7)); err != nil {
			t.Fatal(err)
		}
		for deadline := w.nw.Now().Add(time.Second); got < want; {
			w.settle()
			if got >= want {
				break
			}
			if !w.nw.Step() || w.nw.Now().After(deadline) {
				t.Fatalf("message %d not delivered", want)
			}
		}
	}
	for range 20 { // connected, buffers grown
		send()
	}
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("%v allocations per message", n)
	}
}

// A heartbeat round allocates nothing of its own (the lists of peers and
// connections are kept from round to round): every node runs one per
// HeartbeatInterval for its whole life.
func TestHeartbeatRoundAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops buffers at random under the race detector")
	}
	w := newMemWorld(t, 1, "10.0.0.1", "10.0.0.2", "10.0.0.3")
	defer w.close()
	w.nw.Trace(nil)
	w.nw.TraceData(func(time.Time, *memnet.Conn, int) {})
	for i := 1; i < 3; i++ { // peers and inbound connections both ways
		a, b := w.spawnOn(i, 0, func(*actor.Context, any) (any, error) { return nil, nil }), w.spawnOn(0, i, func(*actor.Context, any) (any, error) { return nil, nil })
		if err := w.sys[0].Send(a, int64(1)); err != nil {
			t.Fatal(err)
		}
		if err := w.sys[i].Send(b, int64(1)); err != nil {
			t.Fatal(err)
		}
	}
	w.run(50 * time.Millisecond)
	n := w.nodes[0]
	if len(n.peers) != 2 || len(n.inbound) != 2 {
		t.Fatalf("%d peers, %d inbound connections; want 2 and 2", len(n.peers), len(n.inbound))
	}
	seq := uint64(1 << 20)
	round := func() {
		seq++
		n.heartbeat(w.nw.Now(), seq)
		w.run(time.Millisecond) // the pings go out, the pongs come back
	}
	for range 10 {
		round()
	}
	if a := testing.AllocsPerRun(100, round); a != 0 {
		t.Errorf("%v allocations per heartbeat round", a)
	}
}
