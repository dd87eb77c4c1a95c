package daemon

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/gateway"
)

// echo answers a "ping" to its sender with a "pong", and counts the
// pongs it gets itself (an answer that came back to it).
type echo struct {
	pongs *atomic.Int64
}

func (e *echo) Receive(c *actor.Context, msg any) (any, error) {
	switch msg {
	case "ping":
		if !c.Sender().IsZero() {
			return nil, c.Send(c.Sender(), "pong")
		}
	case "pong":
		e.pongs.Add(1)
	}
	return nil, nil
}

type echoState struct{}

// pinger sends a "ping" to the Ref it is sent, and counts its pongs.
type pinger struct{ pongs *atomic.Int64 }

func (p *pinger) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case actor.Ref:
		return nil, c.Send(m, "ping")
	case string:
		if m == "pong" {
			p.pongs.Add(1)
		}
	}
	return nil, nil
}

// TestForwardedSendKeepsItsSender: a one-way message handed on by a
// moved child's forwarder to the new instance on another daemon keeps
// its sender when that is the forwarder's daemon's own actor: the new
// instance's answer to c.Sender() reaches it. From a third daemon's actor
// the sender cannot be kept (it arrives from the forwarder): the answer,
// sent to the forwarder, is dropped there rather than handed back to the
// new instance as if the new instance had sent it.
func TestForwardedSendKeepsItsSender(t *testing.T) {
	f := &moveFixture{}
	var echoPongs atomic.Int64
	cfg := func(name string, seeds ...string) Config {
		c := f.config(t, name, seeds...)
		c.Kinds["echo"] = Kind(func(tallyArgs) (actor.Factory, error) {
			return func() actor.Actor { return &echo{pongs: &echoPongs} }, nil
		})
		c.Handoffs = append(c.Handoffs, Handoff("echo",
			func(*echo) (echoState, error) { return echoState{}, nil },
			func(echoState) (*echo, error) { return &echo{pongs: &echoPongs}, nil }))
		return c
	}
	a := start(t, cfg("a"))
	seed := a.Info().GossipAddr
	ds := map[string]*Daemon{"a": a, "b": start(t, cfg("b", seed)), "c": start(t, cfg("c", seed))}
	for _, d := range ds {
		eventually(t, 20*time.Second, d.Info().Node+" knows the gateways", func() bool {
			ml := appCall(t, d, ListMembers{}).(MemberList)
			return len(ml.Members) == 3 && !slices.ContainsFunc(ml.Members, func(m MemberInfo) bool { return m.Gateway.IsZero() })
		})
	}
	eventually(t, 20*time.Second, "deployed", func() bool {
		return appCall(t, a, gateway.DeployApp{Spec: storeSpec("e", "echo", "e1")}).(gateway.AppResult).Err() == nil
	})
	var old placedChild
	eventually(t, 30*time.Second, "e1 runs", func() bool {
		kids, err := placed(a, "e")
		old = kids["e1"]
		return err == nil && len(kids) == 1
	})
	to := other(old.node, "")
	third := other(old.node, to)
	if r := moveCall(t, a, gateway.MoveChild{App: "e", Child: "e1", To: to}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	// old.ref is the forwarder now; as each daemon names it:
	oldOn := func(d *Daemon) actor.Ref {
		t.Helper()
		node, addr, id, ok := a.node.ExportRef(old.ref)
		if !ok {
			t.Fatalf("%v not exported", old.ref)
		}
		r, err := d.node.ImportRef(node, addr, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ping := func(d *Daemon) *atomic.Int64 {
		t.Helper()
		var n atomic.Int64
		p, err := d.sys.Spawn(context.Background(), func() actor.Actor { return &pinger{pongs: &n} })
		if err != nil {
			t.Fatal(err)
		}
		if err := d.sys.Send(p, oldOn(d)); err != nil {
			t.Fatal(err)
		}
		return &n
	}
	// A sender on the forwarder's daemon is kept: its pong comes.
	local := ping(ds[old.node])
	eventually(t, 10*time.Second, "the pong of the forwarder's daemon's pinger", func() bool { return local.Load() == 1 })
	// A sender on a third daemon: the forwarder sends as itself, and
	// drops the pong the new instance sends it.
	far := ping(ds[third])
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if n := echoPongs.Load(); n > 0 {
			t.Fatalf("the new instance got %d pongs meant for the pinger", n)
		}
		time.Sleep(10 * time.Millisecond) // nothing must happen: a bounded watch
	}
	if n := far.Load(); n != 0 {
		t.Fatalf("the third daemon's pinger got %d pongs", n)
	}
}
