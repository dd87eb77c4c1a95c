package actor

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the core paths. Each family has a plain-Go baseline in the
// same file so that ratios hold on a noisy machine; docs/performance.md keeps
// the numbers and the command that produced them.

type benchMsg struct{ n int }

var theMsg = &benchMsg{n: 1}

// runFunc is a message that makes benchDriver run a function on its loop.
type runFunc func(c *Context)

// benchDriver runs functions handed to it, inside an actor, so a benchmark
// can time a loop of operations from within a handler.
type benchDriver struct{}

func (benchDriver) Receive(c *Context, msg any) (any, error) {
	if f, ok := msg.(runFunc); ok {
		f(c)
	}
	return nil, nil
}

type benchEcho struct{}

func (benchEcho) Receive(c *Context, msg any) (any, error) { return msg, nil }

func benchSystem(b *testing.B, loops int) *System {
	b.Helper()
	s := NewSystem(Config{Loops: loops, Watchdog: -1})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func mustSpawn(b *testing.B, s *System, f Factory, opts ...SpawnOption) Ref {
	b.Helper()
	r, err := s.Spawn(context.Background(), f, opts...)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// onDriver runs f inside a driver actor on loop i and waits for it.
func onDriver(b *testing.B, s *System, i int, f func(c *Context)) {
	b.Helper()
	d := mustSpawn(b, s, func() Actor { return benchDriver{} }, OnLoop(i))
	done := make(chan struct{})
	b.ResetTimer()
	if err := s.Send(d, runFunc(func(c *Context) { f(c); close(done) })); err != nil {
		b.Fatal(err)
	}
	<-done
	b.StopTimer()
}

// BenchmarkLocalCall: one op = a synchronous Call between two actors on one loop.
func BenchmarkLocalCall(b *testing.B) {
	s := benchSystem(b, 1)
	target := mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(0))
	b.ReportAllocs()
	var failed error
	onDriver(b, s, 0, func(c *Context) {
		for i := 0; i < b.N; i++ {
			if _, err := c.Call(target, theMsg); err != nil {
				failed = err
				return
			}
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
}

type caller interface{ call(m any) (any, error) }
type plainCallee struct{}

//go:noinline
func (plainCallee) call(m any) (any, error) { return m, nil }

// BenchmarkBaselineInterfaceCall: one op = a method call through an interface.
func BenchmarkBaselineInterfaceCall(b *testing.B) {
	var c caller = plainCallee{}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := c.call(theMsg); err != nil {
			b.Fatal(err)
		}
	}
}

// pingActor asks its peer n times, one ask in flight, and closes done.
type pingActor struct {
	peer Ref
	n    int
	err  error
	done chan struct{}
	cont Continuation
}

func (p *pingActor) Start(c *Context) error {
	p.cont = p.onReply // one method value for every continuation: no per-ask closure
	return nil
}

func (p *pingActor) Receive(c *Context, msg any) (any, error) {
	if n, ok := msg.(int); ok {
		p.n = n
		c.Ask(p.peer, theMsg).Then(p.cont)
	}
	return nil, nil
}

func (p *pingActor) onReply(c *Context, v any, err error) {
	if err != nil {
		p.err = err
		close(p.done)
		return
	}
	if p.n--; p.n <= 0 {
		close(p.done)
		return
	}
	c.Ask(p.peer, theMsg).Then(p.cont)
}

// BenchmarkCrossLoopPingPong: one op = one ask/reply round trip between actors
// on two different loops, one in flight.
func BenchmarkCrossLoopPingPong(b *testing.B) {
	crossLoopPingPong(b, nil)
}

func crossLoopPingPong(b *testing.B, hook Hook) {
	crossLoopPingPongConfig(b, Config{Hook: hook})
}

func crossLoopPingPongConfig(b *testing.B, cfg Config) {
	cfg.Loops, cfg.Watchdog = 2, -1
	s := NewSystem(cfg)
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	pong := mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(1))
	p := &pingActor{peer: pong, done: make(chan struct{})}
	ping := mustSpawn(b, s, func() Actor { return p }, OnLoop(0))
	b.ReportAllocs()
	b.ResetTimer()
	if err := s.Send(ping, b.N); err != nil {
		b.Fatal(err)
	}
	<-p.done
	b.StopTimer()
	if p.err != nil {
		b.Fatal(p.err)
	}
}

// BenchmarkBaselineChanPingPong: one op = a round trip between two goroutines
// over two unbuffered channels.
func BenchmarkBaselineChanPingPong(b *testing.B) {
	req, rep := make(chan *benchMsg), make(chan *benchMsg)
	go func() {
		for m := range req {
			rep <- m
		}
	}()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		req <- theMsg
		<-rep
	}
	close(req)
}

// BenchmarkBaselineYieldPingPong: one op = a round trip between two
// goroutines that take turns on an atomic counter, each yielding
// (runtime.Gosched) until its turn comes: the hand-off of an idle loop
// that yields before it parks (loop.Config.Spin), without the loop.
func BenchmarkBaselineYieldPingPong(b *testing.B) {
	var turn atomic.Int64
	n := int64(b.N)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			for turn.Load() != 2*i+1 {
				runtime.Gosched()
			}
			turn.Store(2*i + 2)
		}
	}()
	b.ReportAllocs()
	for i := range n {
		turn.Store(2*i + 1)
		for turn.Load() != 2*i+2 {
			runtime.Gosched()
		}
	}
	<-done
}

type countActor struct {
	want int64
	got  int64
	done chan struct{}
}

func (a *countActor) Receive(c *Context, msg any) (any, error) {
	if a.got++; a.got == a.want {
		close(a.done)
	}
	return nil, nil
}

const fanInProducers = 4

// cpuClock measures the process's CPU time (user and system, the
// garbage collector's included) over a benchmark: on a shared machine it
// varies less than the wall time, which other processes' load stretches.
type cpuClock struct{ start time.Duration }

func startCPU() cpuClock { return cpuClock{processCPU()} }

// stop reports the CPU time per op as cpu-ns/op.
func (c cpuClock) stop(b *testing.B) {
	b.ReportMetric(float64(processCPU()-c.start)/float64(b.N), "cpu-ns/op")
}

// processCPU is the CPU time the process used so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanIn: 4 plain goroutines send one-way messages to one actor; one
// op = one message delivered.
func BenchmarkFanIn(b *testing.B) {
	s := NewSystem(Config{Loops: 1, Watchdog: -1, QueueCapacity: 1 << 14})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	per := b.N/fanInProducers + 1
	a := &countActor{want: int64(per * fanInProducers), done: make(chan struct{})}
	target := mustSpawn(b, s, func() Actor { return a }, OnLoop(0))
	var full atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for range fanInProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				for s.Send(target, theMsg) != nil { // ErrQueueFull: back off, retry
					full.Add(1)
					runtime.Gosched()
				}
			}
		}()
	}
	<-a.done
	b.StopTimer()
	cpu.stop(b)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
}

// sendBatch is the batch of BenchmarkFanInMany and the remote batch
// benchmark.
const sendBatch = 64

// BenchmarkFanInMany is BenchmarkFanIn with SendMany: each producer sends
// batches of 64 (the rest of a batch again after a yield when the queue
// was full). One op = one message delivered.
func BenchmarkFanInMany(b *testing.B) {
	s := NewSystem(Config{Loops: 1, Watchdog: -1, QueueCapacity: 1 << 14})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	per := (b.N/fanInProducers/sendBatch + 1) * sendBatch
	a := &countActor{want: int64(per * fanInProducers), done: make(chan struct{})}
	target := mustSpawn(b, s, func() Actor { return a }, OnLoop(0))
	var full atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for range fanInProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var batch [sendBatch]any
			for i := range batch {
				batch[i] = theMsg
			}
			for i := 0; i < per; i += sendBatch {
				rest := batch[:]
				for {
					n, err := s.SendMany(target, rest)
					if err == nil {
						break
					}
					full.Add(1) // ErrQueueFull: back off, send the rest
					rest = rest[n:]
					runtime.Gosched()
				}
			}
		}()
	}
	<-a.done
	b.StopTimer()
	wg.Wait()
	b.ReportMetric(float64(per*fanInProducers)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(full.Load())/float64(b.N), "full/op")
}

// BenchmarkBaselineChanFanIn: 4 goroutines send into one buffered channel of
// 1024 drained by one goroutine; one op = one message.
func BenchmarkBaselineChanFanIn(b *testing.B) {
	per := b.N/fanInProducers + 1
	ch := make(chan *benchMsg, 1024)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for range fanInProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				ch <- theMsg
			}
		}()
	}
	for i := 0; i < per*fanInProducers; i++ {
		<-ch
	}
	b.StopTimer()
	cpu.stop(b)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

type idleActor struct{}

func (idleActor) Receive(c *Context, msg any) (any, error) { return nil, nil }

// BenchmarkSpawn: one op = spawn an actor, deliver one message to it (a
// Call), stop it. It also reports B/actor: heap bytes per idle actor over
// 100k live actors.
func BenchmarkSpawn(b *testing.B) {
	s := benchSystem(b, 1)
	factory := func() Actor { return idleActor{} }
	b.ReportAllocs()
	var failed error
	onDriver(b, s, 0, func(c *Context) {
		for i := 0; i < b.N; i++ {
			r, err := c.Spawn(factory)
			if err == nil {
				_, err = c.Call(r, theMsg)
			}
			if err == nil {
				err = c.Stop(r, nil)
			}
			if err != nil {
				failed = err
				return
			}
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
	b.ReportMetric(bytesPerActor(b, factory), "B/actor")
}

// bytesPerActor measures the heap growth of 100k live idle actors on a fresh
// one-loop system.
func bytesPerActor(b *testing.B, f Factory) float64 {
	const n = 100_000
	s := NewSystem(Config{Loops: 1, Watchdog: -1})
	defer func() { _ = s.Shutdown(context.Background()) }()
	d := mustSpawn(b, s, func() Actor { return benchDriver{} }, OnLoop(0))
	measure := func(f func(c *Context)) {
		done := make(chan struct{})
		if err := s.Send(d, runFunc(func(c *Context) { f(c); close(done) })); err != nil {
			b.Fatal(err)
		}
		<-done
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	refs := make([]Ref, 0, n)
	var failed error
	measure(func(c *Context) {
		for range n {
			r, err := c.Spawn(f)
			if err != nil {
				failed = err
				return
			}
			refs = append(refs, r)
		}
	})
	if failed != nil {
		b.Fatal(failed)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	refBytes := float64(cap(refs)) * 16 // the test's own slice of refs
	runtime.KeepAlive(refs)
	return (float64(after.HeapAlloc) - float64(before.HeapAlloc) - refBytes) / n
}

// BenchmarkAskFromGoroutine: one op = a blocking System.Ask from a plain
// goroutine to an actor, reply received.
func BenchmarkAskFromGoroutine(b *testing.B) {
	s := benchSystem(b, 1)
	target := mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(0))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	benchAsks(b, s, ctx, target)
}

// benchAsks times b.N blocking System.Asks to target with ctx.
func benchAsks(b *testing.B, s *System, ctx context.Context, target Ref) {
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Ask(ctx, target, theMsg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAskFromGoroutineNoDeadline is BenchmarkAskFromGoroutine with
// context.Background: an ask that would wait without bound, which by
// default runs an idle target's handler on the asking goroutine.
func BenchmarkAskFromGoroutineNoDeadline(b *testing.B) {
	s := benchSystem(b, 1)
	target := mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(0))
	benchAsks(b, s, context.Background(), target)
}

// BenchmarkLendTimedAsks is BenchmarkAskFromGoroutine, the AskTimeout half
// of BenchmarkAskTimeoutFromGoroutine and BenchmarkCrossLoopPingPong with
// Config.LendTimedAsks: their deadlines (a minute; Context.Ask's default
// 5s) then let them run an idle target's handler themselves.
func BenchmarkLendTimedAsks(b *testing.B) {
	lending := func(b *testing.B) (*System, Ref) {
		s := NewSystem(Config{Loops: 1, Watchdog: -1, LendTimedAsks: true})
		b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		return s, mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(0))
	}
	b.Run("AskFromGoroutine", func(b *testing.B) {
		s, target := lending(b)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		benchAsks(b, s, ctx, target)
	})
	b.Run("AskTimeout", func(b *testing.B) {
		s, target := lending(b)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.AskTimeout(target, theMsg, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CrossLoopPingPong", func(b *testing.B) {
		crossLoopPingPongConfig(b, Config{LendTimedAsks: true})
	})
}

// ifaceRef is the representation a Ref could have had: the mailbox as one
// interface field instead of two typed pointers (same size). It is the
// baseline of BenchmarkRefAsMapKey, which shows why Ref does not use it.
type ifaceRef struct {
	m        mailbox
	idx, gen uint32
}

var benchSinkInt int
var benchSinkBool bool

// BenchmarkRefAsMapKey: one op = a map lookup keyed by a Ref (map), or one
// comparison of two Refs (equal), for Ref and for ifaceRef.
func BenchmarkRefAsMapKey(b *testing.B) {
	s := benchSystem(b, 2)
	const n = 1024
	refs := make([]Ref, n)
	irefs := make([]ifaceRef, n)
	for i := range refs {
		l := s.loops[i%2]
		refs[i] = Ref{l: l, idx: uint32(i % 7), gen: uint32(i)}
		irefs[i] = ifaceRef{m: l, idx: uint32(i % 7), gen: uint32(i)}
	}
	b.Run("map/ref", func(b *testing.B) {
		m := make(map[Ref]int, n)
		for i, r := range refs {
			m[r] = i
		}
		for i := 0; b.Loop(); i++ {
			benchSinkInt += m[refs[i&(n-1)]]
		}
	})
	b.Run("map/interface", func(b *testing.B) {
		m := make(map[ifaceRef]int, n)
		for i, r := range irefs {
			m[r] = i
		}
		for i := 0; b.Loop(); i++ {
			benchSinkInt += m[irefs[i&(n-1)]]
		}
	})
	b.Run("equal/ref", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			benchSinkBool = benchSinkBool != (refs[i&(n-1)] == refs[(i+2)&(n-1)])
		}
	})
	b.Run("equal/interface", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			benchSinkBool = benchSinkBool != (irefs[i&(n-1)] == irefs[(i+2)&(n-1)])
		}
	})
}

// BenchmarkFanInWait is BenchmarkFanIn with SendWait: the producers park
// on a full queue instead of yielding and retrying. One op = one message.
func BenchmarkFanInWait(b *testing.B) {
	s := NewSystem(Config{Loops: 1, Watchdog: -1, QueueCapacity: 1 << 14})
	b.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	per := b.N/fanInProducers + 1
	a := &countActor{want: int64(per * fanInProducers), done: make(chan struct{})}
	target := mustSpawn(b, s, func() Actor { return a }, OnLoop(0))
	ctx := context.Background()
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for range fanInProducers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := s.SendWait(ctx, target, theMsg); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	<-a.done
	b.StopTimer()
	cpu.stop(b)
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSpawnFromGoroutine: a plain goroutine spawns idle actors, one
// op = one actor: "each" with System.Spawn (a loop round trip per actor),
// "many" with SpawnMany in batches of 1024 (one round trip per loop per
// batch). The actors are stopped between batches, off the clock.
func BenchmarkSpawnFromGoroutine(b *testing.B) {
	factory := func() Actor { return idleActor{} }
	ctx := context.Background()
	stopAll := func(b *testing.B, s *System, refs []Ref) {
		b.StopTimer()
		for _, r := range refs {
			if err := s.Stop(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.Run("each", func(b *testing.B) {
		s := benchSystem(b, 2)
		refs := make([]Ref, 0, 1024)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r, err := s.Spawn(ctx, factory)
			if err != nil {
				b.Fatal(err)
			}
			if refs = append(refs, r); len(refs) == cap(refs) {
				stopAll(b, s, refs)
				refs = refs[:0]
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actors/s")
	})
	b.Run("many", func(b *testing.B) {
		s := benchSystem(b, 2)
		b.ReportAllocs()
		for done := 0; done < b.N; {
			n := min(1024, b.N-done)
			refs, err := s.SpawnMany(ctx, n, factory)
			if err != nil {
				b.Fatal(err)
			}
			done += n
			stopAll(b, s, refs)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "actors/s")
	})
}

// BenchmarkAskTimeoutFromGoroutine is BenchmarkAskFromGoroutine with
// AskTimeout (a timeout per call), against "context": a
// context.WithTimeout per call, as users write it with Ask.
func BenchmarkAskTimeoutFromGoroutine(b *testing.B) {
	s := benchSystem(b, 1)
	target := mustSpawn(b, s, func() Actor { return benchEcho{} }, OnLoop(0))
	b.Run("AskTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := s.AskTimeout(target, theMsg, time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("context", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, err := s.Ask(ctx, target, theMsg)
			cancel()
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}
