package debug_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/debug"
	"github.com/actord/actord/loop"
)

// account is an actor that exposes its state to the debugger.
type account struct{ Balance int }

func (a *account) Receive(_ *actor.Context, msg any) (any, error) {
	a.Balance += msg.(int)
	return a.Balance, nil
}

func (a *account) DebugState() any { return a }

func (a *account) DebugPatch(doc json.RawMessage) error { return json.Unmarshal(doc, a) }

// Install the recorder as the System's hook, trace an actor's state, and
// read back the events with the diffs they caused.
func Example() {
	acfg := actor.Config{Loops: 1, Manual: true, Clock: loop.NewFakeClock(time.Unix(0, 0))}
	rec := debug.Install(&acfg, debug.Config{})
	sys := actor.NewSystem(acfg)
	defer sys.Shutdown(context.Background())
	if err := rec.Attach(sys); err != nil {
		panic(err)
	}
	ctx := context.Background()
	acct, _ := sys.Spawn(ctx, func() actor.Actor { return &account{} }, actor.Name("acct"))
	if err := rec.SetTraceActor(ctx, acct, true); err != nil {
		panic(err)
	}
	for _, n := range []int{10, -3} {
		if _, err := sys.Ask(ctx, acct, n); err != nil {
			panic(err)
		}
	}
	for _, e := range rec.Events(debug.EventFilter{Loop: -1, Kinds: []string{"ask"}}) {
		fmt.Println(e.Kind, e.To, e.Type, e.Payload, e.Outcome, string(e.Diff))
	}
	// Output:
	// ask <0.0.0> int 10 ok [{"op":"replace","path":"/Balance","value":10}]
	// ask <0.0.0> int -3 ok [{"op":"replace","path":"/Balance","value":7}]
}

// Patch the state of an actor, as Erlang's sys:replace_state.
func ExampleRecorder_Patch() {
	acfg := actor.Config{Loops: 1, Manual: true}
	rec := debug.Install(&acfg, debug.Config{})
	sys := actor.NewSystem(acfg)
	defer sys.Shutdown(context.Background())
	_ = rec.Attach(sys)
	ctx := context.Background()
	acct, _ := sys.Spawn(ctx, func() actor.Actor { return &account{} })
	st, err := rec.Patch(ctx, acct, json.RawMessage(`{"Balance":100}`))
	fmt.Println(string(st), err)
	v, _ := sys.Ask(ctx, acct, 1)
	fmt.Println(v)
	// Output:
	// {"Balance":100} <nil>
	// 101
}

// Serve the recorder and attach a client with the token.
func ExampleNewServer() {
	acfg := actor.Config{Loops: 1}
	rec := debug.Install(&acfg, debug.Config{})
	sys := actor.NewSystem(acfg)
	defer sys.Shutdown(context.Background())
	_ = rec.Attach(sys)
	dir, _ := os.MkdirTemp("", "actord")
	defer os.RemoveAll(dir)
	tokenFile := filepath.Join(dir, "debug.token")
	srv, err := debug.NewServer(rec, debug.ServerConfig{TokenFile: tokenFile})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	ctx := context.Background()
	_, _ = sys.Spawn(ctx, func() actor.Actor { return &account{} }, actor.Name("acct"))

	cl, err := debug.NewClient(srv.Addr(), tokenFile)
	if err != nil {
		panic(err)
	}
	cl.HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	st, err := cl.State(ctx, "acct")
	fmt.Println(st.Actor, st.Name, st.Type, string(st.State), err)
	// Output:
	// <0.0.0> acct *debug_test.account {
	//     "Balance": 0
	//   } <nil>
}

// A log-linear histogram of handler latencies.
func ExampleHistogram() {
	var h debug.Histogram
	for _, d := range []time.Duration{800 * time.Nanosecond, 2 * time.Microsecond, 3 * time.Microsecond, 40 * time.Microsecond} {
		h.RecordDuration(d)
	}
	fmt.Println(h.Count(), time.Duration(h.Quantile(0.5)), time.Duration(h.Quantile(1)))
	// Output:
	// 4 2.047µs 40µs
}

// Write metrics in Prometheus' text format.
func ExampleWriteMetrics() {
	_ = debug.WriteMetrics(os.Stdout, []debug.Family{{
		Name: "remote_frames_total", Help: "Frames sent.", Type: debug.MetricCounter,
		Samples: []debug.Sample{{Labels: [][2]string{{"peer", "b"}}, Value: 12}},
	}})
	// Output:
	// # HELP remote_frames_total Frames sent.
	// # TYPE remote_frames_total counter
	// remote_frames_total{peer="b"} 12
}

// The JSON Patch between two states.
func ExampleDiff() {
	p, _ := debug.Diff([]byte(`{"n":1,"tags":["a"]}`), []byte(`{"n":2,"tags":["a","b"]}`))
	fmt.Println(string(p))
	// Output:
	// [{"op":"replace","path":"/n","value":2},{"op":"add","path":"/tags/-","value":"b"}]
}
