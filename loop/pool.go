package loop

import (
	"sync"
	"sync/atomic"
)

// Pool is a bounded pool of goroutines for blocking work (file I/O, database
// calls) that must not run on a loop. It has a fixed number of workers and a
// fixed-size job queue. Submit never blocks: when every worker is busy and the
// queue is full it returns [ErrPoolFull] at once, so a loop that submits work
// is never stalled by the pool. The caller decides what to do then (fail the
// request, retry later); the actor layer fails the promise with that error.
type Pool struct {
	mu      sync.RWMutex
	closed  bool
	jobs    chan func()
	wg      sync.WaitGroup
	running atomic.Int64
}

// NewPool starts workers goroutines sharing a queue of queue jobs.
// Non-positive arguments are raised to 1 and 0.
func NewPool(workers, queue int) *Pool {
	if workers < 1 {
		workers = 1
	}
	if queue < 0 {
		queue = 0
	}
	p := &Pool{jobs: make(chan func(), queue)}
	p.wg.Add(workers)
	for range workers {
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.wg.Done()
	for fn := range p.jobs {
		p.running.Add(1)
		fn()
		p.running.Add(-1)
	}
}

// Submit queues fn to run on a worker. It returns ErrPoolFull when all workers
// are busy and the queue is full, and ErrClosed after Close. fn must recover
// its own panics if it can panic: a panic in fn crashes the process, as in any
// goroutine.
func (p *Pool) Submit(fn func()) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.jobs <- fn:
		return nil
	default:
		return ErrPoolFull
	}
}

// Queued returns the number of jobs waiting for a worker.
func (p *Pool) Queued() int { return len(p.jobs) }

// Running returns the number of jobs being run now.
func (p *Pool) Running() int { return int(p.running.Load()) }

// Close stops accepting jobs, lets the workers finish every job already
// accepted, and waits for them to exit. It is idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	p.wg.Wait()
}
