package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// TestRollingRestartOntoANewBinary restarts the three daemons of a
// cluster one after the other onto a "new binary" (the tally kind's v2,
// whose state has a field more), each with DrainOnStop, while a client
// asks the application's three children without pause. Each daemon's
// stop moves its children elsewhere with their state and hands over the
// root it runs; so every child's count goes on from where it was: an
// answer is the child's previous answer plus one, plus at most the asks
// that failed in between (a failed ask may have been counted), and never
// starts again from 1. Every ask is answered or fails with an error.
func TestRollingRestartOntoANewBinary(t *testing.T) {
	f := &moveFixture{}
	names := []string{"a", "b", "c"}
	cfgs := map[string]Config{}
	ds := map[string]*Daemon{}
	for i, n := range names {
		var seeds []string
		if i > 0 {
			seeds = []string{ds["a"].Info().GossipAddr}
		}
		cfgs[n] = f.configOf(t, n, false, seeds...)
		ds[n] = start(t, cfgs[n])
	}
	for _, d := range ds {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	spec := storeSpec("store", "tally", "t1", "t2", "t3")
	eventually(t, 20*time.Second, "store deployed", func() bool {
		return appCall(t, ds["a"], gateway.DeployApp{Spec: spec}).(gateway.AppResult).Err() == nil
	})

	var mu sync.Mutex // guards ds while the client reads it
	running := func() []*Daemon {
		mu.Lock()
		defer mu.Unlock()
		var out []*Daemon
		for _, n := range names {
			if d := ds[n]; d != nil {
				out = append(out, d)
			}
		}
		return out
	}
	// children finds the root among the running daemons and asks it for
	// its children: the daemon and the refs, valid on that daemon.
	children := func() (*Daemon, map[string]actor.Ref) {
		for _, d := range running() {
			live := d.apps.liveApp("store")
			if live == nil {
				continue
			}
			ks, err := d.apps.children(context.Background(), live.root)
			if err != nil || len(ks) != 3 {
				return nil, nil
			}
			refs := map[string]actor.Ref{}
			for _, k := range ks {
				refs[k.id] = k.ref
			}
			return d, refs
		}
		return nil, nil
	}
	eventually(t, 30*time.Second, "store runs with its three children", func() bool {
		d, _ := children()
		return d != nil
	})

	type tallyLog struct {
		last   int64 // the last answer
		failed int   // asks failed since it
		asks   int
	}
	logs := map[string]*tallyLog{"t1": {}, "t2": {}, "t3": {}}
	errc := make(chan error, 1)
	var answered atomic.Int64 // asks answered, all children
	// asked waits until the client has had n more answers.
	asked := func(n int64, what string) {
		t.Helper()
		want := answered.Load() + n
		eventually(t, 30*time.Second, fmt.Sprintf("%d more answers %s", n, what), func() bool {
			select {
			case err := <-errc: // the client stopped: say why
				t.Fatal(err)
			default:
			}
			return answered.Load() >= want
		})
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		fail := func(err error) {
			select {
			case errc <- err:
			default:
			}
		}
		var d *Daemon
		var refs map[string]actor.Ref
		for {
			select {
			case <-stop:
				return
			default:
			}
			if d == nil {
				if d, refs = children(); d == nil {
					time.Sleep(5 * time.Millisecond) // waiting for a root to run: polling
					continue
				}
			}
			for _, n := range []string{"t1", "t2", "t3"} {
				l := logs[n]
				l.asks++
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				v, err := d.sys.Ask(ctx, refs[n], "inc")
				cancel()
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) {
						fail(fmt.Errorf("an ask of %s got no answer in 10 s", n))
						return
					}
					l.failed++
					d = nil // the ref or the daemon may be gone: find the child again
					break
				}
				got, _ := v.(int64)
				if got < l.last+1 || got > l.last+1+int64(l.failed) {
					fail(fmt.Errorf("%s answered %d after %d with %d failed asks between: its state was lost", n, got, l.last, l.failed))
					return
				}
				l.last, l.failed = got, 0
				answered.Add(1)
			}
		}
	}()

	for _, n := range names {
		asked(30, "before "+n+"'s restart")
		mu.Lock()
		d := ds[n]
		ds[n] = nil
		mu.Unlock()
		// What Shutdown runs first with DrainOnStop (TestDrainOnStop);
		// called here to check its result.
		res := d.Drain(context.Background())
		if err := res.Result.Err(); err != nil {
			t.Fatalf("drain of %s: %v", n, err)
		}
		for _, m := range res.Children {
			if m.Err() != nil {
				t.Fatalf("drain of %s: %s not moved: %v", n, m.Child, m.Err())
			}
		}
		for _, r := range res.Roots {
			if r.Err() != nil {
				t.Fatalf("drain of %s: root not handed over: %v", n, r.Err())
			}
		}
		t.Logf("%s drained: %d children moved, %d roots handed over", n, res.Moved(), len(res.Roots))
		for _, m := range res.Children {
			t.Logf("  %s/%s: %s -> %s", m.App, m.Child, m.From, m.To)
		}
		for _, r := range res.Roots {
			t.Logf("  root of %s -> %s", r.App, r.To)
		}
		if err := d.Shutdown(context.Background()); err != nil {
			t.Fatalf("stopping %s: %v", n, err)
		}
		var seed string
		for _, o := range running() {
			seed = o.Info().GossipAddr
			break
		}
		c := f.configOf(t, n, true, seed)
		c.DataDir = cfgs[n].DataDir // the same daemon, its new binary
		nd := start(t, c)
		mu.Lock()
		ds[n] = nd
		mu.Unlock()
		for _, d := range running() {
			eventually(t, 30*time.Second, d.Info().Node+" knows the gateways after "+n+"'s restart", func() bool {
				ml := appCall(t, d, ListMembers{}).(MemberList)
				return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
			})
		}
		select {
		case err := <-errc:
			t.Fatal(err)
		default:
		}
	}
	asked(30, "after the last restart")
	close(stop)
	<-done
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	for n, l := range logs {
		t.Logf("%s: %d asks, last answer %d", n, l.asks, l.last)
		if l.last < 10 {
			t.Fatalf("%s answered only up to %d", n, l.last)
		}
	}
	// After the restarts, each child answers its count plus one (at most
	// plus the asks that failed since its last answer).
	d, refs := children()
	if d == nil {
		t.Fatal("store does not run after the restarts")
	}
	for n, r := range refs {
		v, err := d.sys.Ask(context.Background(), r, "inc")
		if err != nil {
			t.Fatalf("%s after the restarts: %v", n, err)
		}
		if got, l := v.(int64), logs[n]; got < l.last+1 || got > l.last+1+int64(l.failed) {
			t.Fatalf("%s answered %d after %d", n, got, l.last)
		}
	}
}
