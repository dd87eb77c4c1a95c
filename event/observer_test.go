package event

import (
	"fmt"
	"sync"
	"testing"
)

// The observer sees every event, on the emitter's goroutine, before any
// subscriber has it, and whether or not anyone subscribed; EmitContext
// included.
func TestObserverBeforeSubscribers(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
		sub  *Stream[Tick]
	)
	b := New(Config{Observer: func(ty Type, ev any) {
		mu.Lock()
		defer mu.Unlock()
		held := -1
		if sub != nil {
			held = len(sub.Out()) // the event being emitted is not there yet
		}
		seen = append(seen, fmt.Sprintf("%v %v %d", ty, ev, held))
	}})
	defer b.Close()
	em := must(NewEmitter[Tick](b))(t)
	_ = em.Emit(Tick{1}) // no subscriber
	s := must(Subscribe[Tick](b, Buffer(4)))(t)
	mu.Lock()
	sub = s
	mu.Unlock()
	_ = em.Emit(Tick{2})
	_ = em.EmitContext(t.Context(), Tick{3})
	closes := must(NewEmitter[Closed](b))(t) // a type made after the bus
	_ = closes.Emit(Closed{4})
	mu.Lock()
	defer mu.Unlock()
	want := "[event.Tick {1} -1 event.Tick {2} 0 event.Tick {3} 1 event.Closed {4} 2]"
	if got := fmt.Sprint(seen); got != want {
		t.Fatalf("observer saw %v\nwant %v", got, want)
	}
}
