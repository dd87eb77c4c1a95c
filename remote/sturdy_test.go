package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/actord/actord/actor"
	"github.com/flynn/noise"
)

func mustExport(t testing.TB, tn *testNode, name string, gen uint64, r actor.Ref) string {
	t.Helper()
	s, err := tn.node.Export(name, gen, r)
	if err != nil {
		t.Fatalf("Export %q: %v", name, err)
	}
	return s
}

func TestSturdyRefResolves(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	svc := spawn(t, b.sys, echo)
	s := mustExport(t, b, "svc", 1, svc)
	if !strings.HasPrefix(s, "actord://"+b.node.Addr()+"/") {
		t.Fatalf("sturdy ref %q does not name %s", s, b.node.Addr())
	}
	if again := mustExport(t, b, "svc", 1, svc); again != s {
		t.Fatalf("the same name and generation gave %q, then %q", s, again)
	}

	// From another node: a remote ref that works.
	r, err := a.node.Resolve(ctxT(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if !r.IsRemote() || localOf(t, a, b, r) != svc {
		t.Fatalf("resolved %v, want a remote ref of %v", r, svc)
	}
	if v, err := a.sys.Ask(ctxT(t), r, "hello"); err != nil || v != "hello" {
		t.Fatalf("ask through the resolved ref = %v, %v", v, err)
	}
	// On the issuing node: the actor's own ref.
	if l, err := b.node.Resolve(ctxT(t), s); err != nil || l != svc {
		t.Fatalf("local resolve = %v, %v", l, err)
	}

	// Re-exported to another actor, the same string reaches it.
	svc2 := spawn(t, b.sys, func(c *actor.Context, msg any) (any, error) { return "second", nil })
	if s2 := mustExport(t, b, "svc", 1, svc2); s2 != s {
		t.Fatalf("re-export changed the string")
	}
	r2, err := a.node.Resolve(ctxT(t), s)
	if err != nil || localOf(t, a, b, r2) != svc2 {
		t.Fatalf("resolve after re-export = %v, %v", r2, err)
	}
}

func TestSturdyRefRevocationAndForgery(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	c := newTestNode(t, "c", Config{})
	svc := spawn(t, b.sys, echo)
	old := mustExport(t, b, "svc", 1, svc)
	cur := mustExport(t, b, "svc", 2, svc) // revokes generation 1
	if cur == old {
		t.Fatal("a new generation gave the same string")
	}
	dead := func(what, s string) {
		t.Helper()
		for _, n := range []*testNode{a, b} { // from another node and on the issuer
			if r, err := n.node.Resolve(ctxT(t), s); !errors.Is(err, actor.ErrDead) {
				t.Errorf("%s, resolved on %s: %v, %v; want ErrDead", what, n.node.Name(), r, err)
			}
		}
	}
	dead("a revoked generation", old)
	if _, err := a.node.Resolve(ctxT(t), cur); err != nil {
		t.Fatalf("the current generation: %v", err)
	}

	// A changed swiss number looks the same as a revoked one.
	parts := strings.Split(cur, "/")
	sw, _ := base64.RawURLEncoding.DecodeString(parts[len(parts)-1])
	sw[0] ^= 1
	parts[len(parts)-1] = base64.RawURLEncoding.EncodeToString(sw)
	dead("a forged swiss number", strings.Join(parts, "/"))

	// A string naming b's address with c's key: b cannot open the request
	// (so it never learns the swiss number), and nothing resolves.
	parts = strings.Split(cur, "/")
	parts[len(parts)-2] = base64.RawURLEncoding.EncodeToString(c.node.PublicKey())
	if r, err := a.node.Resolve(ctxT(t), strings.Join(parts, "/")); !errors.Is(err, actor.ErrDead) {
		t.Errorf("another node's key: %v, %v; want ErrDead", r, err)
	}

	// Unexport withdraws the name; exporting it again brings it back.
	b.node.Unexport("svc")
	dead("an unexported name", cur)
	mustExport(t, b, "svc", 2, svc)
	if _, err := a.node.Resolve(ctxT(t), cur); err != nil {
		t.Fatalf("after export again: %v", err)
	}
}

func TestSturdyRefSurvivesRestart(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	a := newTestNode(t, "a", Config{ReconnectMax: 100 * time.Millisecond})
	b := newTestNode(t, "b", Config{PrivateKey: key})
	addr := b.node.Addr()
	s := mustExport(t, b, "svc", 7, spawn(t, b.sys, echo))
	if _, err := a.node.Resolve(ctxT(t), s); err != nil {
		t.Fatal(err)
	}
	b.close()

	// While the node is away the string does not resolve, with the
	// transport's error.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.node.Resolve(ctx, s); !errors.Is(err, ErrNodeDown) {
		t.Fatalf("resolve while the node is down: %v, want ErrNodeDown", err)
	}

	// Restarted with the same key, the node exports a new actor under the
	// same name: the old string reaches it.
	b2 := startAt(t, "b", addr, Config{PrivateKey: key})
	got := make(chan any, 1)
	fresh := spawn(t, b2.sys, recorder(got))
	if s2 := mustExport(t, b2, "svc", 7, fresh); s2 != s {
		t.Fatalf("after a restart with the same key: %q, want %q", s2, s)
	}
	var r actor.Ref
	waitFor(t, 20*time.Second, "resolve on the restarted node", func() bool {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err = a.node.Resolve(rctx, s)
		if err != nil && !errors.Is(err, ErrNodeDown) {
			t.Fatalf("resolve on the restarted node: %v", err)
		}
		return err == nil
	})
	if _, err := a.sys.Ask(ctxT(t), r, "after restart"); err != nil {
		t.Fatal(err)
	}
	if v := <-got; v != "after restart" {
		t.Fatalf("the new actor got %v", v)
	}
}

func TestSturdyRefErrors(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	local := spawn(t, b.sys, echo)
	remoteRef := remoteActor(t, a, b, echo)
	if _, err := a.node.Export("", 1, spawn(t, a.sys, echo)); err == nil {
		t.Error("Export with an empty name succeeded")
	}
	if _, err := a.node.Export("x", 1, remoteRef); err == nil {
		t.Error("Export of a remote ref succeeded")
	}
	good := mustExport(t, b, "svc", 1, local)
	key := strings.Split(good, "/")[3]
	for _, s := range []string{
		"",
		"svc",
		"http://" + b.node.Addr() + "/" + key + "/AAAAAAAAAAAAAAAAAAAAAA",
		"actord://" + b.node.Addr() + "/" + key,
		"actord:///" + key + "/AAAAAAAAAAAAAAAAAAAAAA",
		"actord://" + b.node.Addr() + "/short/AAAAAAAAAAAAAAAAAAAAAA",
		"actord://" + b.node.Addr() + "/" + key + "/AAAA",
		"actord://" + b.node.Addr() + "/" + key + "/not base64!",
		good + "/extra",
	} {
		if _, err := a.node.Resolve(ctxT(t), s); !errors.Is(err, ErrBadSturdyRef) {
			t.Errorf("Resolve(%q) = %v, want ErrBadSturdyRef", s, err)
		}
	}
}

// TestSturdyExchangeBindsTheKey checks the two properties Resolve relies
// on: a request sealed to one key cannot be opened with another, and only
// the holder of the named key can make an answer the asker accepts.
func TestSturdyExchangeBindsTheKey(t *testing.T) {
	keyOf := func() noise.DHKey {
		t.Helper()
		priv, err := GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		pub, _ := PublicKey(priv)
		return noise.DHKey{Private: priv, Public: pub}
	}
	named, impostor := keyOf(), keyOf()
	swiss := []byte("0123456789abcdef")
	ask := func() ([]byte, *noise.CipherState) {
		hs, err := sturdyHandshake(nil, true, noise.DHKey{}, named.Public)
		if err != nil {
			t.Fatal(err)
		}
		req, _, back, err := hs.WriteMessage(nil, swiss)
		if err != nil {
			t.Fatal(err)
		}
		return req, back
	}

	req, _ := ask()
	hs, _ := sturdyHandshake(nil, false, impostor, nil)
	if _, _, _, err := hs.ReadMessage(nil, req); err == nil {
		t.Fatal("a request sealed to one key opened with another")
	}

	req, back := ask()
	hs, _ = sturdyHandshake(nil, false, named, nil)
	got, _, answer, err := hs.ReadMessage(nil, req)
	if err != nil || string(got) != string(swiss) {
		t.Fatalf("the named key could not open the request: %q, %v", got, err)
	}
	sealed, _ := answer.Encrypt(nil, nil, []byte("the id"))
	if plain, err := back.Decrypt(nil, nil, sealed); err != nil || string(plain) != "the id" {
		t.Fatalf("the real answer was refused: %q, %v", plain, err)
	}

	// An impostor that saw the request but not the key cannot answer it.
	_, back = ask()
	hs, _ = sturdyHandshake(nil, true, noise.DHKey{}, impostor.Public) // its own exchange, under its own key
	_, _, forged, _ := hs.WriteMessage(nil, nil)
	junk, _ := forged.Encrypt(nil, nil, []byte("a forged id!!!!!!!!!!!!!!!"))
	if _, err := back.Decrypt(nil, nil, junk); err == nil {
		t.Fatal("an answer not made with the named key was accepted")
	}
}

// TestSturdyRefRelayRefused: a node at the address the string names, but
// without its key, relays the sealed request to the real node and its
// sealed answer back. The answer is genuine, but the ref would be used
// through the relay (which would see every message, secret included), so
// Resolve refuses it.
func TestSturdyRefRelayRefused(t *testing.T) {
	a := newTestNode(t, "a", Config{})
	b := newTestNode(t, "b", Config{})
	m := newTestNode(t, "m", Config{})
	s := mustExport(t, b, "svc", 1, spawn(t, b.sys, echo))
	m.node.answer = b.node.answerResolve // the relay, short-circuited
	parts := strings.Split(s, "/")
	parts[2] = m.node.Addr() // actord: "" addr key swiss
	relayed := strings.Join(parts, "/")
	if r, err := a.node.Resolve(ctxT(t), relayed); !errors.Is(err, actor.ErrDead) {
		t.Fatalf("resolved through a relay: %v, %v; want ErrDead", r, err)
	}
	if _, err := a.node.Resolve(ctxT(t), s); err != nil {
		t.Fatalf("the genuine string: %v", err)
	}
}

// TestSturdyRefPinsTheKey: once a sturdy ref is resolved, the peer it goes
// through connects only to the named key. A node that takes the address
// over later gets no frame (they would carry the ref's secret); the asks
// fail as to a node that is down.
func TestSturdyRefPinsTheKey(t *testing.T) {
	a := newTestNode(t, "a", Config{ReconnectMax: 100 * time.Millisecond})
	b := newTestNode(t, "b", Config{})
	addr := b.node.Addr()
	s := mustExport(t, b, "svc", 1, spawn(t, b.sys, echo))
	r, err := a.node.Resolve(ctxT(t), s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.sys.Ask(ctxT(t), r, "hi"); err != nil {
		t.Fatal(err)
	}
	b.close()
	m := startAt(t, "m", addr, Config{}) // another key at the same address
	waitFor(t, 20*time.Second, "A to try the new node at the address", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := a.sys.Ask(ctx, r, "hi")
		if err == nil {
			t.Fatal("an ask through the resolved ref was answered by another key")
		}
		return m.node.Stats().BadFrames > 0 || m.node.Stats().ConnsClosed > 0
	})
	if st := m.node.Stats(); st.FramesIn != 0 {
		t.Fatalf("the node that took the address over got %d frames: %+v", st.FramesIn, st)
	}
}
