package connmgr

import (
	"time"

	"github.com/actord/actord/event"
)

// PeerTrimmed is emitted on Config.Events for each peer a trim pass
// decided to close, once the pass is done. The caller closes the
// connection; Usage.Watched says whether linked or monitoring actors get a
// node-down for it.
type PeerTrimmed struct {
	Peer   string
	Score  int64
	Usage  Usage
	Reason error // wraps ErrTrimmed
	Time   time.Time
}

// LockElapsed is emitted on Config.Events for each lock whose window
// elapsed (Manager.ExpireLocks, Tick). Extended says whether its callback
// extended it, until Until.
type LockElapsed struct {
	Peer     string
	Lock     string
	Extended bool
	Until    time.Time // the new end when Extended
	Time     time.Time
}

// emitters are the Manager's; a nil *emitters emits nothing.
type emitters struct {
	trimmed *event.Emitter[PeerTrimmed]
	elapsed *event.Emitter[LockElapsed]
}

func newEmitters(b *event.Bus) (*emitters, error) {
	if b == nil {
		return nil, nil
	}
	t, err := event.NewEmitter[PeerTrimmed](b)
	if err != nil {
		return nil, err
	}
	l, err := event.NewEmitter[LockElapsed](b)
	if err != nil {
		t.Close()
		return nil, err
	}
	return &emitters{trimmed: t, elapsed: l}, nil
}

func (e *emitters) close() {
	if e != nil {
		e.trimmed.Close()
		e.elapsed.Close()
	}
}
