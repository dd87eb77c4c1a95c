package actor

import "github.com/actord/actord/internal/seam"

// promiseView is the promise seam (seam.Promises): Context.Promise
// without its resolve closure, for a sibling package (quorum) that keeps
// the promise in a struct of its own and settles it later, with no
// allocation per promise.
type promiseView struct{}

func init() {
	seam.Promises = func() any { return promiseView{} }
}

// New is Context.Promise's promise, owned by c's actor.
func (promiseView) New(c *Context) Promise {
	ls := c.ls
	return ls.promises.alloc(ls, c.self, c.slot.inc)
}

// Resolve settles p, made by New, as Context.Promise's resolve function
// does: on p's loop, the first call only. The zero Promise is ignored.
func (promiseView) Resolve(p Promise, v any, err error) {
	if p.ls != nil {
		p.ls.resolve(p, v, err)
	}
}
