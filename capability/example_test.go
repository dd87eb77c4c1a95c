package capability_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/capability"
)

// The messages of an in-memory file service.
type (
	ReadFile  struct{ Path string }
	WriteFile struct {
		Path string
		Data string
	}
	ListFiles struct{}
)

// files is a file-access actor: it serves any path to whoever holds its ref.
type files struct{ data map[string]string }

func (f *files) Receive(c *actor.Context, msg any) (any, error) {
	switch m := msg.(type) {
	case ReadFile:
		d, ok := f.data[path.Clean(m.Path)]
		if !ok {
			return nil, fmt.Errorf("%s: no such file", m.Path)
		}
		return d, nil
	case WriteFile:
		f.data[path.Clean(m.Path)] = m.Data
		return nil, nil
	case ListFiles:
		var names []string
		for n := range f.data {
			names = append(names, n)
		}
		sort.Strings(names)
		return names, nil
	}
	return nil, actor.Unhandled(msg)
}

// within reports whether p names a file inside dir once cleaned, so that
// "dir/../etc/passwd" does not pass.
func within(dir, p string) bool {
	return strings.HasPrefix(path.Clean("/"+p), path.Clean("/"+dir)+"/")
}

// A file-access actor hands out refs limited to one directory: a facet that
// admits reads and writes only under /home/alice, and, built on it, a
// read-only facet of the same directory.
func Example_fileAccess() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer func() { _ = sys.Shutdown(ctx) }()

	fs, _ := sys.Spawn(ctx, func() actor.Actor {
		return &files{data: map[string]string{
			"/home/alice/notes.txt": "buy milk",
			"/home/bob/diary.txt":   "secret",
			"/etc/passwd":           "root:x:0:0",
		}}
	})

	const dir = "/home/alice"
	alice, _ := capability.Spawn(ctx, sys, fs,
		capability.AllowIf(func(m ReadFile) bool { return within(dir, m.Path) }),
		capability.AllowIf(func(m WriteFile) bool { return within(dir, m.Path) }),
	)
	readOnly, _ := capability.Spawn(ctx, sys, alice.Ref(), capability.Allow[ReadFile]())

	v, err := sys.Ask(ctx, alice.Ref(), ReadFile{"/home/alice/notes.txt"})
	fmt.Println("alice reads her notes:", v, err)
	_, err = sys.Ask(ctx, alice.Ref(), WriteFile{"/home/alice/todo.txt", "call bob"})
	fmt.Println("alice writes a file:", err)
	_, err = sys.Ask(ctx, alice.Ref(), ReadFile{"/home/bob/diary.txt"})
	fmt.Println("alice reads bob's diary:", errors.Is(err, capability.ErrNotPermitted))
	_, err = sys.Ask(ctx, alice.Ref(), ReadFile{"/home/alice/../../etc/passwd"})
	fmt.Println("alice escapes with ..:", errors.Is(err, capability.ErrNotPermitted))
	_, err = sys.Ask(ctx, alice.Ref(), ListFiles{})
	fmt.Println("alice lists every file:", errors.Is(err, capability.ErrNotPermitted))

	v, err = sys.Ask(ctx, readOnly.Ref(), ReadFile{"/home/alice/todo.txt"})
	fmt.Println("read-only reads:", v, err)
	_, err = sys.Ask(ctx, readOnly.Ref(), WriteFile{"/home/alice/todo.txt", "x"})
	fmt.Println("read-only writes:", errors.Is(err, capability.ErrNotPermitted))

	// Revoking alice's facet also ends the read-only facet built on it.
	alice.Revoke()
	_, err = sys.Ask(ctx, alice.Ref(), ReadFile{"/home/alice/notes.txt"})
	fmt.Println("alice after revoke:", errors.Is(err, actor.ErrDead))
	// Output:
	// alice reads her notes: buy milk <nil>
	// alice writes a file: <nil>
	// alice reads bob's diary: true
	// alice escapes with ..: true
	// alice lists every file: true
	// read-only reads: call bob <nil>
	// read-only writes: true
	// alice after revoke: true
}

type counter struct{ n int }

type (
	Incr  struct{}
	Get   struct{}
	Reset struct{}
)

func (c *counter) Receive(_ *actor.Context, msg any) (any, error) {
	switch msg.(type) {
	case Incr:
		c.n++
		return c.n, nil
	case Get:
		return c.n, nil
	case Reset:
		c.n = 0
		return 0, nil
	}
	return nil, actor.Unhandled(msg)
}

// Attenuate a counter: the facet's holder may increment and read it but not
// reset it.
func Example() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer func() { _ = sys.Shutdown(ctx) }()

	ctr, _ := sys.Spawn(ctx, func() actor.Actor { return &counter{} })
	f, _ := capability.Spawn(ctx, sys, ctr, capability.Allow[Incr](), capability.Allow[Get]())

	_ = sys.Send(f.Ref(), Incr{}) // sends pass too, in order
	v, err := sys.Ask(ctx, f.Ref(), Incr{})
	fmt.Println(v, err)
	_, err = sys.Ask(ctx, f.Ref(), Reset{})
	fmt.Println(err)
	// Output:
	// 2 <nil>
	// capability: message not permitted by facet: capability_test.Reset
}

// The grantor keeps the Facet and gives away only its Ref; revoking makes
// the Ref behave like a dead actor's for every holder, while the target lives
// on.
func ExampleFacet_Revoke() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 2})
	defer func() { _ = sys.Shutdown(ctx) }()

	ctr, _ := sys.Spawn(ctx, func() actor.Actor { return &counter{} })
	f, _ := capability.Spawn(ctx, sys, ctr, capability.Allow[Incr]())
	holder := f.Ref()

	v, err := sys.Ask(ctx, holder, Incr{})
	fmt.Println("before:", v, err)
	f.Revoke()
	_, err = sys.Ask(ctx, holder, Incr{})
	fmt.Println("after:", errors.Is(err, actor.ErrDead))
	v, err = sys.Ask(ctx, ctr, Get{})
	fmt.Println("target:", v, err)
	// Output:
	// before: 1 <nil>
	// after: true
	// target: 1 <nil>
}

// grantor makes a facet of its counter from inside its handler and hands the
// facet's ref out in its reply.
type grantor struct {
	ctr   actor.Ref
	grant *capability.Facet
}

func (g *grantor) Receive(c *actor.Context, msg any) (any, error) {
	switch msg {
	case "grant":
		f, err := capability.New(c, g.ctr, capability.Allow[Get](), capability.Synchronous())
		if err != nil {
			return nil, err
		}
		g.grant = f
		return f.Ref(), nil
	case "revoke":
		g.grant.Revoke()
		return nil, nil
	}
	return nil, actor.Unhandled(msg)
}

// An actor makes facets with New and revokes them from its own handlers.
func ExampleNew() {
	ctx := context.Background()
	sys := actor.NewSystem(actor.Config{Loops: 1})
	defer func() { _ = sys.Shutdown(ctx) }()

	ctr, _ := sys.Spawn(ctx, func() actor.Actor { return &counter{n: 41} })
	g, _ := sys.Spawn(ctx, func() actor.Actor { return &grantor{ctr: ctr} })

	v, _ := sys.Ask(ctx, g, "grant")
	ro := v.(actor.Ref)
	v, err := sys.Ask(ctx, ro, Get{})
	fmt.Println(v, err)
	_, _ = sys.Ask(ctx, g, "revoke")
	_, err = sys.Ask(ctx, ro, Get{})
	fmt.Println(errors.Is(err, actor.ErrDead))
	// Output:
	// 41 <nil>
	// true
}
