package supervisor

import (
	"errors"
	"testing"
	"time"

	evbus "github.com/actord/actord/event"
)

// A supervisor that exceeds its restart intensity shows up on the runtime's
// event bus as evbus.SupervisorGaveUp, through the event package's bridge.
func TestGaveUpReachesTheEventBus(t *testing.T) {
	bus := evbus.New(evbus.Config{})
	defer bus.Close()
	rt, err := evbus.NewRuntime(bus)
	if err != nil {
		t.Fatal(err)
	}
	gaveUp, err := evbus.Subscribe[evbus.SupervisorGaveUp](bus, evbus.Buffer(4))
	if err != nil {
		t.Fatal(err)
	}
	s, clk := manualSystem(t, 1, rt.Hook)
	rec := newRecorder()
	sup := spawnSup(t, s, Spec{MaxR: 1, MaxT: 10 * time.Second, Children: workers(rec, "a")})
	rec.take()
	send(t, s, rec.ref("a"), "crash")
	idle(s)
	select {
	case e := <-gaveUp.Out():
		t.Fatalf("gave up after one restart: %+v", e)
	default:
	}
	clk.Advance(time.Second)
	send(t, s, rec.ref("a"), "crash") // the second restart within 10 s: too many
	idle(s)
	select {
	case e := <-gaveUp.Out():
		if e.Supervisor != sup || e.Restarts != 1 || e.Within != 10*time.Second || !errors.Is(e.Reason, ErrTooManyRestarts) {
			t.Fatalf("SupervisorGaveUp = %+v, want supervisor %v, 1 in 10s, ErrTooManyRestarts", e, sup)
		}
	default:
		t.Fatal("no SupervisorGaveUp on the bus")
	}
}
