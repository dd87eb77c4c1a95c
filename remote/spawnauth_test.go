package remote

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestAuthorizeSpawn(t *testing.T) {
	type ask struct {
		node, kind string
		key        []byte
	}
	var mu sync.Mutex
	var asked []ask
	b := newTestNode(t, "b", Config{AuthorizeSpawn: func(node string, key []byte, kind string) error {
		mu.Lock()
		asked = append(asked, ask{node, kind, key})
		mu.Unlock()
		if kind == "admin" {
			return errors.New("admin kinds are for the operators' nodes")
		}
		return nil
	}})
	a := newTestNode(t, "a", Config{})
	for _, k := range []string{"echo", "admin"} {
		b.node.RegisterKind(k, echoKind)
	}

	r, err := a.node.Spawn(ctxT(t), b.node.Addr(), "echo", nil)
	if err != nil {
		t.Fatalf("an authorized spawn: %v", err)
	}
	if v, err := a.sys.Ask(ctxT(t), r, "hi"); err != nil || v != "hi" {
		t.Fatalf("ask = %v, %v", v, err)
	}

	// Refused, and told apart from an unknown kind by nothing but the name.
	_, refused := a.node.Spawn(ctxT(t), b.node.Addr(), "admin", nil)
	_, unknown := a.node.Spawn(ctxT(t), b.node.Addr(), "nosuch", nil)
	if !errors.Is(refused, ErrUnknownKind) || !errors.Is(unknown, ErrUnknownKind) {
		t.Fatalf("refused: %v; unknown: %v; want both ErrUnknownKind", refused, unknown)
	}
	if got := strings.Replace(refused.Error(), `"admin"`, `"nosuch"`, 1); got != unknown.Error() {
		t.Fatalf("the refusal %q differs from the unknown kind's %q beyond the name", refused, unknown)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 { // unknown kinds are not asked about
		t.Fatalf("AuthorizeSpawn asked %d times: %+v", len(asked), asked)
	}
	for _, q := range asked {
		if q.node != "a" || !bytes.Equal(q.key, a.node.PublicKey()) {
			t.Fatalf("asked with node %q key %x, want a's name and key %x", q.node, q.key, a.node.PublicKey())
		}
	}
}
