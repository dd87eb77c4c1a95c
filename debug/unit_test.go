package debug_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
)

// feed plays the loop: it sends n synthetic handler events of loop 0, with
// payload i, to the recorder's hook.
func feed(rec *debug.Recorder, from, n int) {
	ev := &actor.Event{Loop: 0, Kind: actor.EventSend}
	for i := from; i < from+n; i++ {
		ev.Seq, ev.Msg, ev.Start, ev.Duration = uint64(i), i, time.Unix(0, int64(i)), time.Duration(i)
		rec.Hook(ev)
	}
}

func TestRingWraps(t *testing.T) {
	rec := debug.New(debug.Config{Loops: 1, RingSize: 256})
	feed(rec, 1, 1000)
	ev := rec.Events(debug.EventFilter{Loop: -1})
	if len(ev) != 256 {
		t.Fatalf("%d events kept, want 256", len(ev))
	}
	for i, e := range ev {
		want := 745 + i
		if e.N != uint64(want) || e.Seq != uint64(want) || e.Payload != strconv.Itoa(want) || e.Type != "int" || e.Kind != "send" {
			t.Fatalf("event %d: %+v, want n=seq=payload=%d", i, e, want)
		}
	}
	if last := rec.Events(debug.EventFilter{Loop: 0, Last: 3}); len(last) != 3 || last[2].N != 1000 {
		t.Fatalf("last 3: %+v", last)
	}
	st := rec.Stats()[0]
	if st.Recorded != 1000 || st.Handled != 1000 || st.RingCapacity != 256 || st.Latency.Count() != 1000 {
		t.Fatalf("stats %+v", st)
	}
}

// TestRingConcurrentDump reads the ring from several goroutines while the
// "loop" writes it (run it with -race): every copy must be consistent (each
// event's payload matches its position) and in order.
func TestRingConcurrentDump(t *testing.T) {
	rec := debug.New(debug.Config{Loops: 1, RingSize: 512})
	const total = 20000
	const readers = 3
	var wg sync.WaitGroup
	done := make(chan struct{})
	// The writer waits, half-way, for every reader's first read (or a
	// deadline), so that reads overlap the writes however the goroutines
	// are scheduled on a loaded machine.
	read := make(chan struct{}, readers)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		feed(rec, 1, total/2)
		deadline := time.After(10 * time.Second)
		for range readers {
			select {
			case <-read:
			case <-deadline:
			}
		}
		feed(rec, 1+total/2, total-total/2)
	}()
	errs := make(chan error, 4)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reads := 0
			for {
				if reads == 1 {
					read <- struct{}{}
				}
				select {
				case <-done:
					if reads == 0 {
						errs <- errors.New("no read overlapped the writes")
					}
					return
				default:
				}
				reads++
				ev := rec.Events(debug.EventFilter{Loop: 0, Last: 300})
				for i, e := range ev {
					if e.Payload != strconv.FormatUint(e.N, 10) {
						errs <- errors.New("torn event: n=" + strconv.FormatUint(e.N, 10) + " payload=" + e.Payload)
						return
					}
					if i > 0 && e.N <= ev[i-1].N {
						errs <- errors.New("events out of order")
						return
					}
				}
				_ = rec.Stats()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := rec.Stats()[0].Recorded; n != total {
		t.Fatalf("recorded %d, want %d", n, total)
	}
}

func TestDefaultRingFitsBudget(t *testing.T) {
	for _, loops := range []int{1, 2, 8, 64} {
		cfg := debug.New(debug.Config{Loops: loops}).Config()
		rings := cfg.RingSize * loops * debug.RecordBytes
		if rings > cfg.MemoryBudget*3/4 && cfg.RingSize > 256 {
			t.Fatalf("%d loops: rings take %d bytes, over 3/4 of %d", loops, rings, cfg.MemoryBudget)
		}
		if cfg.RingSize&(cfg.RingSize-1) != 0 {
			t.Fatalf("ring size %d not a power of two", cfg.RingSize)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h debug.Histogram
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []int64
	for range 100000 {
		v := int64(math.Exp(rng.Float64()*20)) + rng.Int64N(3) // 1 ns .. ~0.5 s, log-spread
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		got := h.Quantile(q)
		if got < exact || float64(got) > float64(exact)*(1+1.0/debug.SubBuckets)+1 {
			t.Errorf("q%v: got %d, exact %d (allowed up to +12.5%%)", q, got, exact)
		}
	}
	if h.Count() != 100000 || h.Max() != vals[len(vals)-1] {
		t.Fatalf("count %d max %d", h.Count(), h.Max())
	}
	// CountBelow is exact at powers of two.
	for e := 0; e < 30; e++ {
		b := int64(1)<<e - 1
		want := uint64(0)
		for _, v := range vals {
			if v <= b {
				want++
			}
		}
		if got := h.CountBelow(b); got != want {
			t.Fatalf("CountBelow(%d) = %d, want %d", b, got, want)
		}
	}
	var empty debug.Histogram
	if empty.Quantile(0.5) != 0 {
		t.Fatal("empty histogram quantile")
	}
	h2 := h
	h2.Merge(&h)
	if h2.Count() != 2*h.Count() || h2.Quantile(0.5) != h.Quantile(0.5) {
		t.Fatal("merge")
	}
	h.Record(math.MaxInt64)
	if h.Quantile(1) != math.MaxInt64 {
		t.Fatalf("max value: %d", h.Quantile(1))
	}
}

func TestDiff(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{`{"a":1,"b":[1,2]}`, `{"a":2,"b":[1,2]}`, `[{"op":"replace","path":"/a","value":2}]`},
		{`{"a":1}`, `{"a":1,"c":"x"}`, `[{"op":"add","path":"/c","value":"x"}]`},
		{`{"a":1,"c":"x"}`, `{"a":1}`, `[{"op":"remove","path":"/c"}]`},
		{`{"a":1}`, `{"a":1}`, ``},
		{``, `{"a":1}`, `[{"op":"replace","path":"","value":{"a":1}}]`},
	} {
		var prev []byte
		if c.a != "" {
			prev = []byte(c.a)
		}
		got, err := debug.Diff(prev, []byte(c.b))
		if err != nil || string(got) != c.want {
			t.Errorf("Diff(%s, %s) = %s, %v; want %s", c.a, c.b, got, err, c.want)
		}
		if got != nil && !json.Valid(got) {
			t.Errorf("invalid patch %s", got)
		}
	}
}

type node struct {
	Name string
	Next *node
}

type bigMsg struct {
	Items []int
	Err   error
	Ref   actor.Ref
	Wait  time.Duration
	M     map[int]string
	f     int // unexported: not rendered
}

func TestPayloadRendering(t *testing.T) {
	rec := debug.New(debug.Config{Loops: 1, RingSize: 256})
	cyc := &node{Name: "a"}
	cyc.Next = cyc
	big := make([]int, 10000)
	cases := []struct {
		msg       any
		want      string // prefix, when trunc
		truncated bool
	}{
		{"hi \"there\"\n", `"hi \"there\"\n"`, false},
		{42, `42`, false},
		{bigMsg{Items: []int{1, 2}, Err: errors.New("bad"), Wait: time.Second, M: map[int]string{7: "x"}, f: 3},
			`{"Items":[1,2],"Err":"bad","Ref":"<nil>","Wait":"1s","M":{"7":"x"}}`, false},
		{[]byte{0, 1, 255}, `{"$bytes":3,"hex":"0001ff"}`, false},
		{cyc, `{"Name":"a","Next":{"Name":"a","Next":{"Name":"a","Next":"…"}}}`, false}, // depth-bounded
		{big, `[0,0,0,`, true},
		{make(chan int), `"<chan int>"`, false},
	}
	for i, c := range cases {
		feed1(rec, c.msg)
		e := rec.Events(debug.EventFilter{Loop: 0, Last: 1})[0]
		if len(e.Payload) > debug.PayloadBytes {
			t.Fatalf("case %d: payload of %d bytes", i, len(e.Payload))
		}
		if e.PayloadTruncated != c.truncated {
			t.Fatalf("case %d: truncated %v, want %v (%s)", i, e.PayloadTruncated, c.truncated, e.Payload)
		}
		if !strings.HasPrefix(e.Payload, c.want) {
			t.Fatalf("case %d: payload %s, want %s", i, e.Payload, c.want)
		}
		if !e.PayloadTruncated && !json.Valid([]byte(e.Payload)) {
			t.Fatalf("case %d: invalid JSON %s", i, e.Payload)
		}
	}
}

func feed1(rec *debug.Recorder, msg any) {
	rec.Hook(&actor.Event{Loop: 0, Kind: actor.EventSend, Msg: msg, Start: time.Now()})
}

// parseMetrics is a tiny parser of the text format: name{labels} -> value,
// and the TYPE of each family.
func parseMetrics(t *testing.T, text string) (map[string]float64, map[string]string) {
	vals, types := map[string]float64{}, map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			p := strings.Fields(f)
			types[p[0]] = p[1]
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad metric line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q", line)
		}
		vals[line[:i]] = v
	}
	return vals, types
}

func TestMetricsText(t *testing.T) {
	var b strings.Builder
	err := debug.WriteMetrics(&b, []debug.Family{
		{Name: "x_total", Help: "Things.\nMore", Type: debug.MetricCounter, Samples: []debug.Sample{{Labels: [][2]string{{"loop", `a"b`}}, Value: 3}}},
		{Name: "lat_seconds", Help: "Latency.", Type: debug.MetricHistogram, Samples: []debug.Sample{{
			Buckets: []debug.Bucket{{Le: 0.5, Count: 1}, {Le: 1, Count: 2}}, Count: 3, Sum: 2.5}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `# HELP x_total Things.\nMore
# TYPE x_total counter
x_total{loop="a\"b"} 3
# HELP lat_seconds Latency.
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.5"} 1
lat_seconds_bucket{le="1"} 2
lat_seconds_bucket{le="+Inf"} 3
lat_seconds_sum 2.5
lat_seconds_count 3
`
	if b.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", b.String(), want)
	}

	// The recorder's own families parse back, with consistent histograms.
	rec := debug.New(debug.Config{Loops: 2, RingSize: 256})
	feed(rec, 1, 100) // durations 1..100 ns
	b.Reset()
	if err := debug.WriteMetrics(&b, rec.Families()); err != nil {
		t.Fatal(err)
	}
	vals, types := parseMetrics(t, b.String())
	if types["actord_loop_handler_seconds"] != "histogram" || types["actord_loop_events_total"] != "counter" || types["actord_loop_queue_depth"] != "gauge" {
		t.Fatalf("types %v", types)
	}
	if vals[`actord_loop_events_total{loop="0"}`] != 100 || vals[`actord_loop_events_total{loop="1"}`] != 0 {
		t.Fatalf("events: %v", vals)
	}
	if vals[`actord_loop_handler_seconds_count{loop="0"}`] != 100 || vals[`actord_loop_handler_seconds_bucket{loop="0",le="+Inf"}`] != 100 {
		t.Fatal("histogram count")
	}
	// durations 1..100 ns: all <= 256 ns (the first bound)
	if vals[`actord_loop_handler_seconds_bucket{loop="0",le="2.56e-07"}`] != 100 {
		t.Fatalf("first bucket: %v", vals[`actord_loop_handler_seconds_bucket{loop="0",le="2.56e-07"}`])
	}
	if s := vals[`actord_loop_handler_seconds_sum{loop="0"}`]; math.Abs(s-5050e-9) > 1e-12 {
		t.Fatalf("sum %v", s)
	}
}
