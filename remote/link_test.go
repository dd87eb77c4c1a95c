package remote

import (
	"errors"
	"fmt"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// The link state machine on its own: no sockets, no goroutines, a clock
// and jitter chosen by the test.

type linkRig struct {
	l      *link
	now    time.Time
	epochs uint64
	budget int // dials to answer other nodes still allowed
}

func newLinkRig() *linkRig {
	r := &linkRig{now: time.Unix(1_900_000_000, 0), budget: 1 << 30}
	cfg := &linkConfig{
		reconnectMin: 20 * time.Millisecond, reconnectMax: 2 * time.Second,
		heartbeatTimeout: 5 * time.Second, handshakeTimeout: 10 * time.Second,
		nextEpoch: func() uint64 { r.epochs++; return r.epochs },
		mayAnswer: func(time.Time) bool {
			if r.budget == 0 {
				return false
			}
			r.budget--
			return true
		},
	}
	r.l = newLink(cfg, func() string { return "b" }, r.now)
	return r
}

func (r *linkRig) advance(d time.Duration) { r.now = r.now.Add(d) }

// connect takes an idle link through a dial to a welcomed connection and
// returns its epoch.
func (r *linkRig) connect(t *testing.T) uint64 {
	t.Helper()
	e := r.l.startDial(r.now)
	if !r.l.opened(e, r.now) {
		t.Fatal("opened refused")
	}
	if err := r.l.secured(e, []byte("key-b"), nil); err != nil {
		t.Fatal(err)
	}
	if err := r.l.welcomed(e, 1); err != nil {
		t.Fatal(err)
	}
	return e
}

var errReset = fmt.Errorf("%w: b: read: connection reset", ErrNodeDown)

func TestLinkEpochs(t *testing.T) {
	r := newLinkRig()
	e1 := r.connect(t)
	if !r.l.lost(e1, errReset, r.now, 0.5) {
		t.Fatal("the current connection's loss was ignored")
	}
	e2 := r.l.epoch
	if e2 <= e1 {
		t.Fatalf("epoch %d after losing %d", e2, e1)
	}
	// Events of the lost connection change nothing.
	if r.l.opened(e1, r.now) || r.l.lost(e1, errReset, r.now, 0.5) || !errors.Is(r.l.secured(e1, []byte("k"), nil), errStaleConn) {
		t.Fatal("an event of the lost connection was taken")
	}
	// Nothing wants the peer: the retry lets it go; the next use dials the
	// connection of the new epoch.
	r.advance(time.Second)
	if r.l.retry(r.now) {
		t.Fatal("a retry without anything wanting the peer dialed")
	}
	if dial, err := r.l.admit(fromLocal, r.now); !dial || err != nil {
		t.Fatalf("admit: %v, %v", dial, err)
	}
	if e := r.l.startDial(r.now); e != e2 {
		t.Fatalf("dialing epoch %d, want %d", e, e2)
	}
}

func TestLinkKnownDownRefusesAndRetries(t *testing.T) {
	r := newLinkRig()
	e := r.connect(t)
	r.l.lost(e, errReset, r.now, 0.5) // jitter 0.5: exactly the backoff
	dial, err := r.l.admit(fromLocal, r.now)
	if dial || !errors.Is(err, ErrNodeDown) || !errors.Is(err, ErrNotSent) || !errors.Is(err, errReset) {
		t.Fatalf("admit while known down = %v, %v; want a refusal matching ErrNodeDown, ErrNotSent and the reason", dial, err)
	}
	if want := r.now.Add(20 * time.Millisecond); !r.l.retryAt.Equal(want) {
		t.Fatalf("retry at %v, want %v (ReconnectMin)", r.l.retryAt, want)
	}
	if r.l.retry(r.now.Add(19 * time.Millisecond)) {
		t.Fatal("retried before its time")
	}
	r.advance(20 * time.Millisecond)
	if !r.l.retry(r.now) {
		t.Fatal("a local use while down did not make the retry dial")
	}
	// The dial fails: still down, the next retry twice as far.
	e = r.l.startDial(r.now)
	r.l.lost(e, errReset, r.now, 0.5)
	if want := r.now.Add(40 * time.Millisecond); !r.l.retryAt.Equal(want) {
		t.Fatalf("second retry at %v, want %v", r.l.retryAt, want)
	}
	// Until a connection is welcomed, local sends are refused, answers
	// queued on a connection under way are not.
	r.advance(40 * time.Millisecond)
	_, _ = r.l.admit(fromLocal, r.now) // demand
	if !r.l.retry(r.now) {
		t.Fatal("no dial")
	}
	e = r.l.startDial(r.now)
	r.l.opened(e, r.now)
	if _, err := r.l.admit(fromLocal, r.now); !errors.Is(err, ErrNotSent) {
		t.Fatalf("a local send during the handshake after a loss: %v, want a refusal", err)
	}
	if dial, err := r.l.admit(answer, r.now); dial || err != nil {
		t.Fatalf("an answer during the handshake: %v, %v, want queued", dial, err)
	}
	_ = r.l.secured(e, []byte("key-b"), nil)
	if err := r.l.welcomed(e, 1); err != nil {
		t.Fatal(err)
	}
	if dial, err := r.l.admit(fromLocal, r.now); dial || err != nil || r.l.backoff != 0 {
		t.Fatalf("after the Welcome: %v, %v (backoff %v), want queued and the backoff reset", dial, err, r.l.backoff)
	}
}

func TestLinkForgetsDownWhenNothingWantsIt(t *testing.T) {
	r := newLinkRig()
	e := r.connect(t)
	r.l.lost(e, errReset, r.now, 0.5)
	r.advance(time.Second)
	if r.l.retry(r.now) {
		t.Fatal("dialed a peer nothing wants")
	}
	if r.l.down != nil || !r.l.retryAt.IsZero() {
		t.Fatalf("still known down (%v) or a retry armed (%v)", r.l.down, r.l.retryAt)
	}
	// The next local use dials, as for a new peer.
	if dial, err := r.l.admit(fromLocal, r.now); !dial || err != nil {
		t.Fatalf("a local send after the peer was let go: %v, %v, want a dial", dial, err)
	}
}

func TestLinkBackoff(t *testing.T) {
	r := newLinkRig()
	var got []time.Duration
	_, _ = r.l.admit(fromLocal, r.now)
	e := r.l.startDial(r.now)
	for range 10 {
		r.l.lost(e, errReset, r.now, 0.5)
		got = append(got, r.l.retryAt.Sub(r.now))
		r.advance(r.l.retryAt.Sub(r.now))
		_, _ = r.l.admit(fromLocal, r.now) // a use while down: the retry dials
		if !r.l.retry(r.now) {
			t.Fatal("no dial")
		}
		e = r.l.startDial(r.now) // the driver dials at once, under the same lock
	}
	want := []time.Duration{20, 40, 80, 160, 320, 640, 1280, 2000, 2000, 2000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("backoffs %v, want %v ms", got, want)
		}
	}
	// Jitter spreads it over ±50%; a refused connect is retried within
	// refusedRetryMax.
	r.l.lost(e, errReset, r.now, 0.999)
	if d := r.l.retryAt.Sub(r.now); d < 2900*time.Millisecond || d > 3000*time.Millisecond {
		t.Fatalf("backoff with jitter 0.999: %v, want just under 3 s", d)
	}
	r.advance(5 * time.Second)
	_, _ = r.l.admit(fromLocal, r.now)
	if !r.l.retry(r.now) {
		t.Fatal("no dial")
	}
	refused := fmt.Errorf("%w: b: dial: %w", ErrNodeDown, syscall.ECONNREFUSED)
	r.l.lost(r.l.startDial(r.now), refused, r.now, 0.5)
	if d := r.l.retryAt.Sub(r.now); d != refusedRetryMax {
		t.Fatalf("retry after a refused connect in %v, want %v", d, refusedRetryMax)
	}
}

func TestLinkDeadlines(t *testing.T) {
	r := newLinkRig()
	e := r.l.startDial(r.now)
	r.l.opened(e, r.now)
	// Bytes keep coming (lastHeard moves), the handshake does not finish.
	for range 9 {
		r.advance(time.Second)
		if err := r.l.expired(r.now, r.now); err != nil {
			t.Fatalf("expired early: %v", err)
		}
	}
	r.advance(1001 * time.Millisecond)
	if err := r.l.expired(r.now, r.now); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("handshake past its deadline: %v, want ErrNodeDown", err)
	}
	r.l.lost(e, errReset, r.now, 0.5)
	// Welcomed, then silent past the heartbeat timeout.
	e = r.connect(t)
	heard := r.now
	r.advance(5 * time.Second)
	if err := r.l.expired(r.now, heard); err != nil {
		t.Fatalf("expired at the timeout itself: %v", err)
	}
	r.advance(time.Millisecond)
	if err := r.l.expired(r.now, heard); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("silent past the heartbeat timeout: %v", err)
	}
	_ = e
}

func TestLinkAnswers(t *testing.T) {
	r := newLinkRig()
	// Nothing connected here from the address: an answer does not dial.
	if dial, err := r.l.admit(answer, r.now); dial || !errors.Is(err, ErrNodeDown) {
		t.Fatalf("an answer to an address nobody claimed: %v, %v", dial, err)
	}
	// A node claims it: the answer dials, and must reach a claimed key.
	r.l.claimOpened([]byte("key-liar"), r.now)
	if dial, err := r.l.admit(answer, r.now); !dial || err != nil {
		t.Fatalf("an answer to a claim: %v, %v, want a dial", dial, err)
	}
	e := r.l.startDial(r.now)
	r.l.opened(e, r.now)
	if err := r.l.secured(e, []byte("key-somebody-else"), nil); err == nil {
		t.Fatal("the answer's dial reached another key and was let through")
	}
	r.l.lost(e, errReset, r.now, 0.5)
	// Not retried for the claim, though its connection stays open.
	r.advance(time.Second)
	if r.l.retry(r.now) {
		t.Fatal("retried a failed claim")
	}
	if dial, _ := r.l.admit(answer, r.now); dial {
		t.Fatal("an answer dialed again after the claim failed")
	}
	// A new claim may be tried once more; the node-wide budget bounds it.
	r.budget = 0
	r.l.claimOpened([]byte("key-b"), r.now)
	if dial, _ := r.l.admit(answer, r.now); dial {
		t.Fatal("dialed past the node-wide budget")
	}
	r.budget = 1
	if dial, _ := r.l.admit(answer, r.now); !dial {
		t.Fatal("no dial within the budget")
	}
	e = r.l.startDial(r.now)
	r.l.opened(e, r.now)
	if err := r.l.secured(e, []byte("key-b"), nil); err != nil {
		t.Fatalf("a claimed key refused: %v", err)
	}
	// A pinned key (a resolved sturdy ref) wins over anything else.
	r.l.lost(e, errReset, r.now, 0.5)
	r.advance(time.Second)
	r.l.dialNow(false)
	e = r.l.startDial(r.now)
	r.l.opened(e, r.now)
	if err := r.l.secured(e, []byte("key-b"), []byte("key-pinned")); err == nil {
		t.Fatal("a key other than the pinned one was let through")
	}
}

func TestLinkMembership(t *testing.T) {
	r := newLinkRig()
	if !r.l.peerUp(r.now) {
		t.Fatal("PeerUp of an idle peer did not dial")
	}
	e := r.l.startDial(r.now)
	r.l.lost(e, errReset, r.now, 0.5)
	r.advance(time.Second)
	if !r.l.retry(r.now) {
		t.Fatal("a member was not redialed after a loss")
	}
	e = r.l.startDial(r.now)
	r.l.peerDown()
	r.l.lost(e, errReset, r.now, 0.5)
	r.advance(time.Second)
	if r.l.retry(r.now) {
		t.Fatal("a member reported down was redialed with nothing wanting it")
	}
	// Seen alive again: dialed at once, whatever the backoff.
	if !r.l.peerUp(r.now) {
		t.Fatal("PeerUp of a member seen again did not dial")
	}
}

func TestLinkClaimRedialsAtOnce(t *testing.T) {
	r := newLinkRig()
	e := r.connect(t)
	r.l.lost(e, errReset, r.now, 0.5)
	if !r.l.claimOpened([]byte("key-b"), r.now) {
		t.Fatal("a connection from a node known down did not make it redial at once")
	}
	if !r.l.retryAt.IsZero() {
		t.Fatal("the retry stayed armed after dialing at once")
	}
}

func TestLinkForgettable(t *testing.T) {
	r := newLinkRig()
	if r.l.forgettable(r.now, time.Second) {
		t.Fatal("a new peer is forgettable before its idle time")
	}
	r.advance(time.Second)
	if !r.l.forgettable(r.now, time.Second) {
		t.Fatal("an unused peer is not forgettable")
	}
	e := r.connect(t)
	r.advance(time.Hour)
	if r.l.forgettable(r.now, time.Second) {
		t.Fatal("a connected peer is forgettable")
	}
	r.l.lost(e, errReset, r.now, 0.5)
	r.advance(time.Hour)
	if r.l.forgettable(r.now, time.Second) {
		t.Fatal("a peer with a retry armed is forgettable")
	}
	r.l.retry(r.now) // nothing wants it: let go
	r.l.claimOpened([]byte("key-b"), r.now)
	r.advance(time.Hour)
	if r.l.forgettable(r.now, time.Second) {
		t.Fatal("a peer with a connection from it is forgettable")
	}
	r.l.claimClosed([]byte("key-b"), r.now)
	r.advance(time.Second)
	if !r.l.forgettable(r.now, time.Second) {
		t.Fatal("not forgettable once nothing needs it")
	}
}

// TestLinkStaleWelcome: the Welcome of a connection whose epoch already
// ended (a close is asynchronous, so its buffered bytes can still be read)
// changes nothing: the link does not become up with no connection.
func TestLinkStaleWelcome(t *testing.T) {
	r := newLinkRig()
	e := r.l.startDial(r.now)
	r.l.opened(e, r.now)
	if err := r.l.secured(e, []byte("key-b"), nil); err != nil {
		t.Fatal(err)
	}
	r.l.lost(e, errReset, r.now, 0.5) // the handshake deadline, say
	if err := r.l.welcomed(e, 1); err == nil || r.l.phase == linkUp || r.l.down == nil {
		t.Fatalf("a stale Welcome: %v; phase %v, down %v", err, r.l.phase, r.l.down)
	}
	if _, err := r.l.admit(fromLocal, r.now); !errors.Is(err, ErrNotSent) {
		t.Fatalf("a local send after the stale Welcome: %v, want a refusal (known down)", err)
	}
}

// TestLinkReplaced: the current connection closes when a new incarnation
// of the peer's node replaces the one that welcomed it, not otherwise.
func TestLinkReplaced(t *testing.T) {
	r := newLinkRig()
	if r.l.replaced(2) {
		t.Fatal("idle: nothing to close")
	}
	e := r.connect(t) // welcomed by incarnation 1
	if r.l.replaced(1) {
		t.Fatalf("up with the new incarnation: its connection %d must stay", e)
	}
	if !r.l.replaced(2) {
		t.Fatalf("up with the old incarnation: its connection %d must close", e)
	}
	r.l.lost(e, errReset, r.now, 0.5)
	r.l.startDial(r.now) // a dial under way: the new incarnation answers it
	if r.l.replaced(2) {
		t.Fatal("dialing: the dial must stay")
	}
}

// queues, which a sender asks first to spare itself the clock, agrees with
// admit in every phase: whenever it says so, admit queues without a dial
// and without changing the link.
func TestLinkQueuesAgreesWithAdmit(t *testing.T) {
	check := func(what string, r *linkRig) {
		t.Helper()
		for _, o := range []origin{fromLocal, answer, forced} {
			if !r.l.queues(o) {
				continue
			}
			before := *r.l
			if dial, err := r.l.admit(o, r.now); dial || err != nil {
				t.Fatalf("%s, origin %d: queues, but admit = %v, %v", what, o, dial, err)
			}
			after := *r.l
			before.name, after.name = nil, nil // funcs never compare equal
			if !reflect.DeepEqual(before, after) {
				t.Fatalf("%s, origin %d: admit changed the link", what, o)
			}
		}
	}
	r := newLinkRig()
	check("idle", r)
	if r.l.queues(fromLocal) {
		t.Fatal("an idle link queues without a dial")
	}
	e := r.l.startDial(r.now)
	check("dialing", r)
	r.l.opened(e, r.now)
	check("handshake", r)
	_ = r.l.secured(e, []byte("key-b"), nil)
	_ = r.l.welcomed(e, 1)
	check("connected", r)
	if !r.l.queues(fromLocal) {
		t.Fatal("a connected link does not queue a local send as it is")
	}
	r.l.lost(e, errReset, r.now, 0.5)
	check("known down", r)
	if r.l.queues(fromLocal) {
		t.Fatal("a link known down queues a local send")
	}
	_, _ = r.l.admit(fromLocal, r.now)
	r.advance(time.Second)
	r.l.retry(r.now)
	r.l.opened(r.l.startDial(r.now), r.now)
	check("redialing while known down", r)
	if r.l.queues(fromLocal) {
		t.Fatal("a local send queued during the handshake after a loss")
	}
	r.l.closed = true
	check("closed", r)
}
