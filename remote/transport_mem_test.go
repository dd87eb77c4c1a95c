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
	w := newMemWorld(t, 1, "10.0.0.1", "10.0.0.2")
	defer w.close()
	w.nw.Trace(nil) // the test's formatted trace allocates
	w.nw.TraceData(func(time.Time, memnet.Addr, memnet.Addr, int) {})
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
