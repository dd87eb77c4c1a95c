package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/actord/actord/examples/kvstore"
)

// percentile returns the p-th percentile (0 < p <= 1, nearest rank) of
// sorted latencies, or 0 if there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// fmtLatency prints a latency with three significant digits or so.
func fmtLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%dµs", d.Microseconds())
	}
}

// sample is one interval of the load, for the progress line.
type sample struct {
	elapsed    time.Duration
	interval   time.Duration
	puts, gets int
	p50, p99   time.Duration
	acked      int // acknowledged puts so far
	failed     int // failed or timed-out requests so far
}

// progressLine formats a sample.
func progressLine(s sample) string {
	ops := 0.0
	if s.interval > 0 {
		ops = float64(s.puts+s.gets) / s.interval.Seconds()
	}
	return fmt.Sprintf("  %4.1fs  %7.0f ops/s  (puts %d, gets %d)  p50 %s  p99 %s  acknowledged puts %d  failed %d",
		s.elapsed.Seconds(), ops, s.puts, s.gets, fmtLatency(s.p50), fmtLatency(s.p99), s.acked, s.failed)
}

// progress writes progress lines: on a terminal it rewrites one line with
// \r, elsewhere it writes one line per sample.
type progress struct {
	w    io.Writer
	tty  bool
	open bool // a \r line is on screen
}

func (p *progress) update(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.open = true
		return
	}
	fmt.Fprintln(p.w, line)
}

// println ends the \r line, if any, and prints a line of its own.
func (p *progress) println(a ...any) {
	p.end()
	fmt.Fprintln(p.w, a...)
}

func (p *progress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// recorder collects latencies and counts of a load, per interval.
type recorder struct {
	mu         sync.Mutex
	lat        []time.Duration
	puts, gets int
	acked      atomic.Int64
	failed     atomic.Int64
	notApplied atomic.Int64 // failed puts known not applied (kvstore.ErrNotWritten)
	// during, if set, tells the requests that began in a window of
	// interest (a daemon down), counted in opsDuring and failedDuring.
	during                  func(time.Time) bool
	opsDuring, failedDuring atomic.Int64
}

// count records the outcome of a request that began at t0.
func (r *recorder) count(t0 time.Time, failed bool) {
	if r.during == nil || !r.during(t0) {
		return
	}
	r.opsDuring.Add(1)
	if failed {
		r.failedDuring.Add(1)
	}
}

func (r *recorder) add(d time.Duration, put bool) {
	r.mu.Lock()
	r.lat = append(r.lat, d)
	if put {
		r.puts++
	} else {
		r.gets++
	}
	r.mu.Unlock()
}

// take returns the interval's sample and starts a new interval.
func (r *recorder) take(elapsed, interval time.Duration) sample {
	r.mu.Lock()
	lat, puts, gets := r.lat, r.puts, r.gets
	r.lat, r.puts, r.gets = make([]time.Duration, 0, len(lat)), 0, 0
	r.mu.Unlock()
	slices.Sort(lat)
	return sample{elapsed: elapsed, interval: interval, puts: puts, gets: gets,
		p50: percentile(lat, 0.50), p99: percentile(lat, 0.99),
		acked: int(r.acked.Load()), failed: int(r.failed.Load())}
}

// loadResult is what the demo's load leaves: every acknowledged put, and
// the reads that did not see a value acknowledged before them.
type loadResult struct {
	acked      map[string]string
	wrongReads []string
	failed     int
	notApplied int // of failed: puts that failed with kvstore.ErrNotWritten
	ops        int
	// requests that began while a daemon was down (recorder.during), and
	// how many of them failed
	opsDown, failedDown int
}

// runLoad runs workers that put new keys and read back their own
// acknowledged keys until ctx ends. Each put is a fresh key, so an
// acknowledged put has exactly one value to find later.
func runLoad(ctx context.Context, cl *kvstore.Client, workers int, opTimeout time.Duration, rec *recorder) loadResult {
	type wres struct {
		keys, vals []string
		wrong      []string
		ops        int
	}
	out := make([]wres, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			res := &out[w]
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for seq := 0; ctx.Err() == nil; seq++ {
				rctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				if len(res.keys) == 0 || rng.IntN(2) == 0 {
					k := fmt.Sprintf("demo-%03d-%07d", w, seq)
					v := fmt.Sprintf("value of %s #%d", k, rng.Uint32())
					t0 := time.Now()
					err := cl.Put(rctx, k, []byte(v))
					rec.count(t0, err != nil)
					if err == nil {
						rec.add(time.Since(t0), true)
						res.keys, res.vals = append(res.keys, k), append(res.vals, v)
						rec.acked.Add(1)
					} else {
						rec.failed.Add(1)
						if errors.Is(err, kvstore.ErrNotWritten) {
							rec.notApplied.Add(1)
						}
					}
				} else {
					i := rng.IntN(len(res.keys))
					t0 := time.Now()
					got, ok, err := cl.Get(rctx, res.keys[i])
					rec.count(t0, err != nil)
					switch {
					case err != nil:
						rec.failed.Add(1)
					case !ok || string(got) != res.vals[i]:
						rec.add(time.Since(t0), false)
						res.wrong = append(res.wrong, fmt.Sprintf("%s: got %q (present %v), want %q", res.keys[i], got, ok, res.vals[i]))
					default:
						rec.add(time.Since(t0), false)
					}
				}
				cancel()
				res.ops++
			}
		})
	}
	wg.Wait()
	lr := loadResult{acked: map[string]string{}, failed: int(rec.failed.Load()), notApplied: int(rec.notApplied.Load()),
		opsDown: int(rec.opsDuring.Load()), failedDown: int(rec.failedDuring.Load())}
	for _, r := range out {
		for i, k := range r.keys {
			lr.acked[k] = r.vals[i]
		}
		lr.wrongReads = append(lr.wrongReads, r.wrong...)
		lr.ops += r.ops
	}
	return lr
}

// readBack reads every acknowledged put and returns the ones missing or
// different (lost) and the reads that failed.
func readBack(ctx context.Context, cl *kvstore.Client, acked map[string]string, workers int) (lost []string, errs []error) {
	keys := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for k := range keys {
				got, ok, err := cl.Get(ctx, k)
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: %w", k, err))
				case !ok:
					lost = append(lost, k+": absent")
				case string(got) != acked[k]:
					lost = append(lost, fmt.Sprintf("%s: %q, want %q", k, got, acked[k]))
				}
				mu.Unlock()
			}
		})
	}
	for k := range acked {
		keys <- k
	}
	close(keys)
	wg.Wait()
	slices.Sort(lost)
	return lost, errs
}

// benchCell is one measurement of the load generator.
type benchCell struct {
	op       string // "get" or "put"
	clients  int
	ops      int
	errors   int
	took     time.Duration
	p50, p99 time.Duration
}

func (c benchCell) rate() float64 { return float64(c.ops) / c.took.Seconds() }

// benchRun runs clients goroutines doing op for d and measures them. Gets
// read keys from keys (written beforehand); puts write fresh keys.
func benchRun(cl *kvstore.Client, op string, clients int, d time.Duration, keys []string, val []byte) benchCell {
	lats := make([][]time.Duration, clients)
	errs := make([]int, clients)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1024)
			// One context for the worker's requests, each of which gets
			// at least 5 s: a context (and its timer) per request cost the
			// client process a tenth of its CPU.
			rctx, rcancel := context.WithTimeout(context.Background(), d+5*time.Second)
			defer rcancel()
			for i := 0; ctx.Err() == nil; i++ {
				t0 := time.Now()
				var err error
				if op == "get" {
					_, _, err = cl.Get(rctx, keys[(w*7919+i)%len(keys)])
				} else {
					err = cl.Put(rctx, fmt.Sprintf("bench-%d-%03d-%d", clients, w, i), val)
				}
				if err != nil {
					errs[w]++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			lats[w] = lat
		})
	}
	wg.Wait()
	c := benchCell{op: op, clients: clients, took: time.Since(start)}
	all := slices.Concat(lats...)
	slices.Sort(all)
	c.ops = len(all)
	for _, e := range errs {
		c.errors += e
	}
	c.p50, c.p99 = percentile(all, 0.50), percentile(all, 0.99)
	return c
}

// benchTable writes cells as a markdown table.
func benchTable(w io.Writer, cells []benchCell) {
	fmt.Fprintln(w, "| op | clients | ops/s | p50 | p99 | requests | errors |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, c := range cells {
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %d | %d |\n", c.op, c.clients, c.rate(), fmtLatency(c.p50), fmtLatency(c.p99), c.ops, c.errors)
	}
}
