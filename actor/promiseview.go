package actor

import (
	"time"

	"github.com/actord/actord/internal/seam"
)

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

// Then is p.Then of k.Continue with arg: the continuation of a caller that
// keeps its state in k, without a closure per promise.
func (promiseView) Then(p Promise, k seam.Cont[*Context], arg int) {
	p.then(cont{k: k, arg: arg})
}

// AfterFunc is c.AfterFunc of k.Continue(c, arg, nil, nil), without a
// closure per timer.
func (promiseView) AfterFunc(c *Context, d time.Duration, k seam.Cont[*Context], arg int) Timer {
	ls := c.ls
	t := ls.addTimer(c.self, nil, nil, c.slot.inc, d, 0)
	ls.timers.entries[t.idx].k = cont{k: k, arg: arg}
	return t
}
