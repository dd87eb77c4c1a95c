package remote

import (
	"time"

	"github.com/actord/actord/event"
)

// nodeEvents emits the remote layer's lifecycle on an event bus
// (Config.Events): NodeUp and NodeDown for peers this node dials, and
// ConnOpened and ConnClosed for every connection, both directions. A nil
// *nodeEvents emits nothing. Emit never blocks, so these are safe on network
// loops.
type nodeEvents struct {
	up     *event.Emitter[event.NodeUp]
	down   *event.Emitter[event.NodeDown]
	opened *event.Emitter[event.ConnOpened]
	closed *event.Emitter[event.ConnClosed]
	dead   *event.Emitter[event.DeadLetter]
	now    func() time.Time // the node's clock
}

func newNodeEvents(b *event.Bus) (*nodeEvents, error) {
	e := &nodeEvents{now: time.Now}
	var err error
	if e.up, err = event.NewEmitter[event.NodeUp](b); err != nil {
		return nil, err
	}
	if e.down, err = event.NewEmitter[event.NodeDown](b); err != nil {
		return nil, err
	}
	if e.opened, err = event.NewEmitter[event.ConnOpened](b); err != nil {
		return nil, err
	}
	if e.closed, err = event.NewEmitter[event.ConnClosed](b); err != nil {
		return nil, err
	}
	if e.dead, err = event.NewEmitter[event.DeadLetter](b); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *nodeEvents) connOpened(node, local, remote string) {
	if e != nil {
		_ = e.opened.Emit(event.ConnOpened{Node: node, Local: local, Remote: remote, Time: e.now()})
	}
}

func (e *nodeEvents) connClosed(node, local, remote string, reason error) {
	if e != nil {
		_ = e.closed.Emit(event.ConnClosed{Node: node, Local: local, Remote: remote, Reason: reason, Time: e.now()})
	}
}

func (e *nodeEvents) nodeUp(node, addr string) {
	if e != nil {
		_ = e.up.Emit(event.NodeUp{Node: node, Addr: addr, Time: e.now()})
	}
}

func (e *nodeEvents) nodeDown(node, addr string, reason error) {
	if e != nil {
		_ = e.down.Emit(event.NodeDown{Node: node, Addr: addr, Reason: reason, Time: e.now()})
	}
}

func (e *nodeEvents) deadLetter(d event.DeadLetter) {
	if e != nil {
		_ = e.dead.Emit(d)
	}
}

func (e *nodeEvents) close() {
	if e != nil {
		e.dead.Close()
		e.up.Close()
		e.down.Close()
		e.opened.Close()
		e.closed.Close()
	}
}
