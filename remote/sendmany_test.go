package remote

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/actord/actord/actor"
)

// TestSendManyRemote: batches to an actor of another node arrive whole and
// in order, from an actor and from a goroutine, also with a Down among
// them; into a full outbound queue a batch queues a
// prefix, says ErrQueueFull, and encodes exactly that prefix.
func TestSendManyRemote(t *testing.T) {
	// No heartbeats: frames leave only when the batch's write starts them
	// (and no false node-down on a loaded machine).
	cfg := Config{HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour}
	a := newTestNode(t, "a", cfg)
	b := newTestNode(t, "b", cfg)
	const batches, size = 50, 100
	got := make(chan any, batches*size+8)
	r := remoteActor(t, a, b, func(c *actor.Context, msg any) (any, error) {
		if w, ok := msg.(actor.Ref); ok { // watch w: its Downs are delivered here
			return nil, c.Monitor(w)
		}
		got <- msg
		return nil, nil
	})
	batch := func(k int) []any {
		msgs := make([]any, size)
		for i := range msgs {
			msgs[i] = k*size + i
		}
		return msgs
	}
	expect := func(what string, n int) {
		t.Helper()
		for i := range n {
			if v := recv(t, got, 30*time.Second, what); v != i {
				t.Fatalf("%s: message %d is %v", what, i, v)
			}
		}
	}
	errc := make(chan error, 1)
	src := spawn(t, a.sys, func(c *actor.Context, msg any) (any, error) {
		for k := range batches {
			if n, err := c.SendMany(r, batch(k)); n != size || err != nil {
				errc <- fmt.Errorf("batch %d: %d sent, %w", k, n, err)
				return nil, nil
			}
		}
		errc <- nil
		return nil, nil
	})
	if err := a.sys.Send(src, "go"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, errc, 30*time.Second, "the sender"); err != nil {
		t.Fatal(err)
	}
	expect("from an actor", batches*size)
	for k := range batches {
		if n, err := a.sys.SendMany(r, batch(k)); n != size || err != nil {
			t.Fatalf("from a goroutine, batch %d: %d sent, %v", k, n, err)
		}
	}
	expect("from a goroutine", batches*size)

	// A Down of a local actor among the messages goes as Send sends one (a
	// Down frame, for a watcher of that actor).
	gone := spawn(t, a.sys, func(*actor.Context, any) (any, error) { return nil, nil })
	if _, err := a.sys.Ask(ctxT(t), r, gone); err != nil {
		t.Fatal(err)
	}
	dn := actor.Down{Ref: gone}
	if n, err := a.sys.SendMany(r, []any{0, dn, 1}); n != 3 || err != nil {
		t.Fatalf("a batch with a Down: %d sent, %v", n, err)
	}
	// The Down is another sender's (gone's) signal: ordered with gone's
	// messages, not with this goroutine's, which keep their order.
	var ints []any
	downs := 0
	for range 3 {
		switch v := recv(t, got, 30*time.Second, "the batch with a Down").(type) {
		case actor.Down:
			if !v.Ref.IsRemote() || v.Reason != nil {
				t.Fatalf("the Down %v, want gone's (as b names it)", v)
			}
			downs++
		default:
			ints = append(ints, v)
		}
	}
	if downs != 1 || len(ints) != 2 || ints[0] != 0 || ints[1] != 1 {
		t.Fatalf("got %d Downs and %v, want one Down and [0 1]", downs, ints)
	}
	if st := b.node.Stats(); st.Dropped != 0 {
		t.Fatalf("%d dropped", st.Dropped)
	}
}

// TestSendManyRemoteFullQueue: a peer that reads nothing fills the
// outbound queue; a batch then queues a prefix, encodes exactly that many
// messages, and returns ErrQueueFull.
func TestSendManyRemoteFullQueue(t *testing.T) {
	const maxOut = 32 << 10
	drain := make(chan struct{})
	defer close(drain)
	addr := slowPeer(t, drain)
	a := newTestNode(t, "a", Config{MaxOutbound: maxOut, HeartbeatInterval: time.Hour, HeartbeatTimeout: time.Hour})
	r, p := fakeRef(a, addr)
	msg := make([]byte, 1024)
	msgs := make([]any, 128) // 128 KiB: more than the queue holds
	for i := range msgs {
		msgs[i] = msg
	}
	n, err := a.sys.SendMany(r, msgs)
	if !errors.Is(err, actor.ErrQueueFull) || n == 0 || n >= len(msgs) {
		t.Fatalf("SendMany past MaxOutbound: %d queued, %v; want a prefix and ErrQueueFull", n, err)
	}
	// The messages in the stream (in Send and batch frames), none acknowledged.
	p.mu.Lock()
	out := scanDeadLetters(p.ob.buf, &p.fw.ids).total
	p.mu.Unlock()
	if out != n {
		t.Fatalf("%d messages encoded for %d queued", out, n)
	}
	if n2, err := a.sys.SendMany(r, msgs[:1]); n2 != 0 || !errors.Is(err, actor.ErrQueueFull) {
		t.Fatalf("a batch into the full queue: %d, %v", n2, err)
	}
}
