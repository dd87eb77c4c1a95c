package loop

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestPostWaitParksUntilRoom: with the queue full, PostWait waits (it does
// not fail and does not spin) until the loop's next pass frees room; then
// every event arrives, in each producer's order.
func TestPostWaitParksUntilRoom(t *testing.T) {
	const capacity, producers, each = 4, 4, 200
	var mu sync.Mutex
	var got []int
	gate := make(chan struct{})
	l := New[int](handlerFunc[int](func(e *int) {
		if *e < 0 {
			<-gate // hold the loop while the queue fills
			return
		}
		mu.Lock()
		got = append(got, *e)
		mu.Unlock()
	}), Config{Capacity: capacity})
	t.Cleanup(func() { l.Close(nil) }) // after startRun's cleanup: Run has returned
	startRun(t, context.Background(), l)
	mustNil(t, l.Post(-1))
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.PostWait(context.Background(), p*each+i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// The producers fill the queue and then wait.
	deadline := time.Now().Add(waitLimit)
	for l.room.waiters.Load() < producers {
		if time.Now().After(deadline) {
			t.Fatalf("%d producers waiting, want %d", l.room.waiters.Load(), producers)
		}
		time.Sleep(time.Millisecond) // polling a condition, not synchronisation
	}
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PostWait: %v", err)
	}
	deadline = time.Now().Add(waitLimit)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == producers*each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %d of %d", n, producers*each)
		}
		time.Sleep(time.Millisecond)
	}
	last := map[int]int{}
	for _, v := range got {
		p := v / each
		if prev, ok := last[p]; ok && v <= prev {
			t.Fatalf("producer %d: %d after %d", p, v, prev)
		}
		last[p] = v
	}
}

// TestPostWaitGivesUp: a full queue that does not drain: PostWait returns
// ctx's error when ctx ends, and ErrClosed when the loop closes.
func TestPostWaitGivesUp(t *testing.T) {
	l := New[int](handlerFunc[int](func(*int) {}), Config{Capacity: 1})
	mustNil(t, l.Post(1)) // full, and no one runs the loop
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.PostWait(ctx, 2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("PostWait on a full queue = %v, want the context's error", err)
	}
	res := make(chan error, 1)
	go func() { res <- l.PostWait(context.Background(), 3) }()
	deadline := time.Now().Add(waitLimit)
	for l.room.waiters.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("PostWait did not wait")
		}
		time.Sleep(time.Millisecond)
	}
	l.Close(nil)
	select {
	case err := <-res:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("PostWait across Close = %v, want ErrClosed", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("PostWait still waiting after Close")
	}
}
