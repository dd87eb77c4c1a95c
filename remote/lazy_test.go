package remote

import (
	"errors"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/vmihailenco/msgpack/v5"
)

// The same wire name for two Go types whose fields disagree: a value of
// lazyOut encodes on the sending node and fails to decode as lazyIn on the
// receiving one, past every check the network goroutine makes (a known
// type, a well-formed value), so only the target's loop finds the fault.
type lazyOut struct{ N string }
type lazyIn struct{ N int }

// A payload that fails to decode on the target's loop gets the signal it
// got when the network goroutine decoded it: an ask fails with
// ErrBadFrame, a one-way message is dropped and counted in Stats.Dropped;
// the connection stays and the messages after it arrive in order. Both
// are reported to the System's hooks too, with the cause
// (actor.EventDropped), which they were not before.
func TestPayloadFailsToDecodeOnLoop(t *testing.T) {
	var mu sync.Mutex
	var drops []error
	b := newTestNodeOf(t, "b", Config{}, actor.Config{LifecycleHook: func(ev *actor.Event) {
		if ev.Kind == actor.EventDropped {
			mu.Lock()
			drops = append(drops, ev.Err)
			mu.Unlock()
		}
	}})
	a := newTestNode(t, "a", Config{})
	if err := Register[lazyOut](a.node, "test.lazy"); err != nil {
		t.Fatal(err)
	}
	if err := Register[lazyIn](b.node, "test.lazy"); err != nil {
		t.Fatal(err)
	}
	got := make(chan any, 16)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		got <- msg
		return msg, nil
	})

	if _, err := a.sys.Ask(ctxT(t), r, lazyOut{N: "x"}); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("ask with a payload that does not decode: %v, want ErrBadFrame", err)
	}

	dropped, bad := b.node.Stats().Dropped, b.node.Stats().BadFrames
	if err := a.sys.Send(r, lazyOut{N: "y"}); err != nil {
		t.Fatal(err)
	}
	if err := a.sys.Send(r, "after"); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m != "after" {
			t.Fatalf("handler got %#v, want only the message after the bad one", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message after the bad one never arrived")
	}
	if st := b.node.Stats(); st.Dropped != dropped+1 || st.BadFrames != bad {
		t.Fatalf("Dropped %d → %d, BadFrames %d → %d: want one drop, no bad frame", dropped, st.Dropped, bad, st.BadFrames)
	}
	waitFor(t, 5*time.Second, "the drop to reach the hook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(drops) == 2 // the ask's and the message's
	})
	mu.Lock()
	defer mu.Unlock()
	for _, err := range drops {
		if !errors.Is(err, ErrBadFrame) {
			t.Fatalf("dropped with %v, want ErrBadFrame", err)
		}
	}
	if v, err := a.sys.Ask(ctxT(t), r, "still up"); err != nil || v != "still up" {
		t.Fatalf("ask after the bad payloads = %v, %v", v, err)
	}
}

type boxRec struct{ A, B int64 }
type boxPtr struct{ P *int64 } // the size of a pointer: kept in the interface itself

// A payload decoded by reflection costs one allocation, the value's own
// (typeInfo.box), where Value.Interface added a copy; values of every size
// come back intact, through garbage collections.
func TestDecodedPayloadAllocatesOnce(t *testing.T) {
	reg := newRegistry()
	for name, v := range map[string]any{"test.rec": boxRec{}, "test.ptr": boxPtr{}} {
		if err := reg.add(name, reflect.TypeOf(v)); err != nil {
			t.Fatal(err)
		}
	}
	decode := func(name string, v any) any {
		t.Helper()
		ti, _ := reg.ofID(typeID(name))
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var r ctxReader
		r.Reset(b)
		got, err := decodeValue(msgpack.NewDecoder(&r), &r, b, 0, len(b), ti)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var held []any
	for i := range int64(100) {
		held = append(held, decode("test.rec", boxRec{A: i, B: -i}), decode("test.ptr", boxPtr{P: &i}), decode("int", int(i)))
		runtime.GC()
	}
	for i, v := range held {
		n := int64(i / 3)
		switch i % 3 {
		case 0:
			if v != (boxRec{A: n, B: -n}) {
				t.Fatalf("decoded %#v, want %#v", v, boxRec{A: n, B: -n})
			}
		case 1:
			if p := v.(boxPtr).P; p == nil || *p != n {
				t.Fatalf("decoded %#v, want a pointer to %d", v, n)
			}
		case 2:
			if v != int(n) {
				t.Fatalf("decoded %#v, want %d", v, n)
			}
		}
	}

	ti, _ := reg.ofID(typeID("test.rec"))
	b, _ := msgpack.Marshal(boxRec{A: 1 << 40, B: 2})
	var r ctxReader
	d := msgpack.NewDecoder(&r)
	allocs := testing.AllocsPerRun(200, func() {
		r.Reset(b)
		if v, err := decodeValue(d, &r, b, 0, len(b), ti); err != nil || v != (boxRec{A: 1 << 40, B: 2}) {
			t.Fatalf("decoded %#v, %v", v, err)
		}
	})
	if allocs != 1 {
		t.Fatalf("%v allocations per decoded payload, want 1", allocs)
	}
}
