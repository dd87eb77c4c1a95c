package connmgr

import (
	"errors"
	"testing"
	"time"

	"github.com/actord/actord/event"
)

func TestEvents(t *testing.T) {
	bus := event.New(event.Config{})
	defer bus.Close()
	trimmed, err := event.Subscribe[PeerTrimmed](bus, event.Buffer(8))
	if err != nil {
		t.Fatal(err)
	}
	elapsed, err := event.Subscribe[LockElapsed](bus, event.Buffer(8))
	if err != nil {
		t.Fatal(err)
	}
	m := newTest(t, noTime(Config{HighWater: 1, LowWater: 0, Events: bus}))
	if !event.HasEmitter[PeerTrimmed](bus) || !event.HasEmitter[LockElapsed](bus) {
		t.Fatal("no emitters registered")
	}
	connect(t, m, t0, "a")
	m.Add("b", Stable, t0)
	m.Connected("b", 1, t0)
	h, _ := m.Peer("a")
	h.AddMonitors(1)
	m.Lock("a", "l", time.Second, t0, func(string, string, time.Time) time.Duration { return time.Second })
	m.Tick(t0.Add(time.Second))          // elapses, extended
	m.Tick(t0.Add(time.Second))          // still locked
	m.Unlock("a", "l")                   // no event for an unlock
	d := m.Tick(t0.Add(2 * time.Second)) // trims a
	if len(d.Close) != 1 || len(d.Elapsed) != 0 {
		t.Fatalf("decisions %+v", d)
	}
	el := <-elapsed.Out()
	if el.Peer != "a" || el.Lock != "l" || !el.Extended || !el.Until.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("lock event %+v", el)
	}
	tr := <-trimmed.Out()
	if tr.Peer != "a" || tr.Score != d.Close[0].Score || !tr.Usage.Watched() || !errors.Is(tr.Reason, ErrTrimmed) || !tr.Time.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("trim event %+v", tr)
	}
	m.Close()
	m.Close()
	if event.HasEmitter[PeerTrimmed](bus) {
		t.Fatal("emitter open after Close")
	}
	select {
	case ev := <-trimmed.Out():
		t.Fatalf("extra trim event %+v", ev)
	case ev := <-elapsed.Out():
		t.Fatalf("extra lock event %+v", ev)
	default:
	}
}
