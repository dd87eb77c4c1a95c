package loop

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

const waitLimit = 10 * time.Second

// waitFor fails the test if ch is not closed (or sent on) within waitLimit.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitGroup fails the test if wg does not finish within waitLimit.
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor(t, done, what)
}

// eventually polls cond until it holds or waitLimit passes. Polling yields
// with a short timer wait, not as a means of synchronisation: cond is the
// condition being waited for.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(waitLimit)
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestPoolRunsJobs(t *testing.T) {
	p := NewPool(4, 100)
	defer p.Close()
	const n = 1000
	var ran atomic.Int64
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; {
		err := p.Submit(func() { ran.Add(1); wg.Done() })
		switch {
		case err == nil:
			i++
		case errors.Is(err, ErrPoolFull):
			// the queue is momentarily full; wait for a job to finish
			eventually(t, "room in the pool", func() bool { return p.Queued() < 100 })
		default:
			t.Fatalf("Submit: %v", err)
		}
	}
	waitGroup(t, &wg, "all jobs to run")
	if ran.Load() != n {
		t.Fatalf("ran %d jobs, want %d", ran.Load(), n)
	}
}

func TestPoolDefaults(t *testing.T) {
	p := NewPool(0, -5) // one worker, unbuffered queue
	defer p.Close()
	if cap(p.jobs) != 0 {
		t.Fatalf("queue capacity %d, want 0", cap(p.jobs))
	}
	ran := make(chan struct{})
	// With no queue a job is accepted only once the worker is waiting for it.
	eventually(t, "the worker to take a job", func() bool {
		return p.Submit(func() { close(ran) }) == nil
	})
	waitFor(t, ran, "the job to run")
}

// blockWorkers fills every worker of p with a job that waits on release and
// returns once all of them are running.
func blockWorkers(t *testing.T, p *Pool, workers int, release <-chan struct{}) {
	t.Helper()
	started := make(chan struct{}, workers)
	for i := 0; i < workers; i++ {
		if err := p.Submit(func() { started <- struct{}{}; <-release }); err != nil {
			t.Fatalf("Submit blocker %d: %v", i, err)
		}
	}
	for i := 0; i < workers; i++ {
		waitFor(t, started, "a blocking job to start")
	}
	if got := p.Running(); got != workers {
		t.Fatalf("Running = %d, want %d", got, workers)
	}
}

func TestPoolFull(t *testing.T) {
	const workers, queue = 2, 3
	p := NewPool(workers, queue)
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer p.Close()
	defer unblock()

	blockWorkers(t, p, workers, release)
	var ran atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < queue; i++ {
		wg.Add(1)
		if err := p.Submit(func() { ran.Add(1); wg.Done() }); err != nil {
			wg.Done()
			t.Fatalf("Submit queued job %d: %v", i, err)
		}
	}
	if got := p.Queued(); got != queue {
		t.Fatalf("Queued = %d, want %d", got, queue)
	}
	// Every worker busy and the queue full: refused at once, repeatedly.
	for i := 0; i < 10; i++ {
		if err := p.Submit(func() { t.Error("refused job ran") }); !errors.Is(err, ErrPoolFull) {
			t.Fatalf("Submit on a full pool: %v, want ErrPoolFull", err)
		}
	}
	unblock()
	waitGroup(t, &wg, "queued jobs to run")
	if ran.Load() != queue {
		t.Fatalf("ran %d queued jobs, want %d", ran.Load(), queue)
	}
	// Room again once the workers are free.
	ok := make(chan struct{})
	eventually(t, "a submit to be accepted after the pool drained", func() bool {
		return p.Submit(func() { close(ok) }) == nil
	})
	waitFor(t, ok, "the job submitted after draining")
}

func TestPoolCloseRunsAcceptedJobs(t *testing.T) {
	const workers, queue = 1, 3
	p := NewPool(workers, queue)
	release := make(chan struct{})
	blockWorkers(t, p, workers, release)
	var order []int
	var mu sync.Mutex
	for i := 0; i < queue; i++ {
		if err := p.Submit(func() { mu.Lock(); order = append(order, i); mu.Unlock() }); err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	// Close marks the pool closed at once, then waits for the workers.
	eventually(t, "Submit to report ErrClosed", func() bool {
		return errors.Is(p.Submit(func() { t.Error("job submitted after Close ran") }), ErrClosed)
	})
	select {
	case <-closed:
		t.Fatal("Close returned while a worker was still running a job")
	default:
	}
	close(release)
	waitFor(t, closed, "Close to return")
	mu.Lock()
	defer mu.Unlock()
	if !equalInts(order, []int{0, 1, 2}) {
		t.Fatalf("accepted jobs ran as %v, want [0 1 2]", order)
	}
	if p.Running() != 0 || p.Queued() != 0 {
		t.Fatalf("after Close: Running %d Queued %d", p.Running(), p.Queued())
	}
	if err := p.Submit(func() {}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v, want ErrClosed", err)
	}
	// Idempotent: a second and third Close return without blocking or panicking.
	again := make(chan struct{})
	go func() { p.Close(); p.Close(); close(again) }()
	waitFor(t, again, "repeated Close")
}

// TestPoolSubmitRacingClose checks that no Submit panics on the closed
// channel and that every accepted job runs before Close returns.
func TestPoolSubmitRacingClose(t *testing.T) {
	for iter := 0; iter < 20; iter++ {
		p := NewPool(2, 8)
		var accepted, ran atomic.Int64
		start := make(chan struct{})
		var wg sync.WaitGroup
		for g := 0; g < 4; g++ {
			wg.Go(func() {
				<-start
				for {
					err := p.Submit(func() { ran.Add(1) })
					switch {
					case err == nil:
						accepted.Add(1)
					case errors.Is(err, ErrPoolFull):
						runtime.Gosched() // let the workers run
					case errors.Is(err, ErrClosed):
						return
					default:
						t.Errorf("Submit: %v", err)
						return
					}
				}
			})
		}
		close(start)
		eventually(t, "some jobs to run", func() bool { return ran.Load() > int64(iter) })
		p.Close()
		closedRan := ran.Load() // every accepted job has run by now
		waitGroup(t, &wg, "submitters to stop")
		if a := accepted.Load(); a != closedRan || ran.Load() != a {
			t.Fatalf("iter %d: accepted %d, ran %d by Close, %d in the end", iter, a, closedRan, ran.Load())
		}
	}
}

func TestPoolCloseStopsWorkers(t *testing.T) {
	// goleak in TestMain checks the whole package; check here too so that a
	// Close that leaks workers is pinned to this test.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	p := NewPool(8, 8)
	var wg sync.WaitGroup
	wg.Add(8)
	for i := 0; i < 8; i++ {
		for p.Submit(wg.Done) != nil {
			eventually(t, "room", func() bool { return p.Queued() < 8 })
		}
	}
	waitGroup(t, &wg, "the jobs to run")
	p.Close()
	if _, open := <-p.jobs; open {
		t.Fatal("jobs channel still open after Close")
	}
}
