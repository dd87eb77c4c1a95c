package debug

import (
	"fmt"
	"sync"

	"github.com/actord/actord/actor"
	"github.com/actord/actord/supervisor"
)

const (
	maxPanicText = 1 << 10
	maxStackText = 16 << 10
)

// crashEntry is one crash, kept with copies of the records that led to it,
// so it outlives the loop's ring.
type crashEntry struct {
	n          uint64 // ring position of the crash event
	loop       int
	actor      refID
	name       string
	inc        uint32
	time       int64
	panicText  string
	stack      string
	typ        uint32
	msg        []byte
	msgTrunc   bool
	from       refID
	preceding  []record
	supervisor string // from the supervisor's ChildCrashed report, when it came
	childID    string
	restarts   int
	reported   bool
}

// crashLog keeps the last crashes of every loop.
type crashLog struct {
	mu      sync.Mutex
	max     int
	entries []*crashEntry // oldest first
	total   uint64
}

func (l *crashLog) add(r *Recorder, cr *actor.Crash, n uint64, ctx []record, payload []byte, trunc bool, typ uint32) {
	p := fmt.Sprint(cr.Value)
	if len(p) > maxPanicText {
		p = p[:maxPanicText]
	}
	st := cr.StackText()
	if len(st) > maxStackText {
		st = st[:maxStackText]
	}
	e := &crashEntry{n: n, loop: cr.Loop, actor: idOf(cr.Actor), name: cr.Name, inc: cr.Incarnation,
		time: cr.Time.UnixNano(), panicText: p, stack: string(st), typ: typ,
		msg: append([]byte(nil), payload...), msgTrunc: trunc, from: idOf(cr.From), preceding: ctx}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if len(l.entries) >= l.max {
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:len(l.entries)-1]
	}
	l.entries = append(l.entries, e)
}

// supervised attaches a supervisor's ChildCrashed report to the crash it
// is about: the newest crash of that actor not yet reported.
func (l *crashLog) supervised(rep *supervisor.Report) {
	id := idOf(rep.Child)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.entries) - 1; i >= 0; i-- {
		e := l.entries[i]
		if e.actor == id && !e.reported {
			e.supervisor, e.childID, e.restarts, e.reported = rep.Supervisor, rep.ChildID, rep.Restarts, true
			return
		}
	}
}

func (l *crashLog) snapshot() ([]crashEntry, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]crashEntry, len(l.entries))
	for i, e := range l.entries {
		out[i] = *e
	}
	return out, l.total
}

// reportLog keeps the last supervisor reports.
type reportLog struct {
	mu      sync.Mutex
	max     int
	entries []Report
}

func (l *reportLog) add(rep *supervisor.Report) {
	r := Report{Time: rep.Time.UTC().Format(timeFormat), Kind: rep.Kind.String(), Supervisor: rep.Supervisor,
		SupervisorRef: idOf(rep.Self).String(), Child: rep.ChildID, ChildRef: idOf(rep.Child).String(),
		Restarts: rep.Restarts}
	if rep.Reason != nil {
		r.Reason, _ = safeError(rep.Reason)
		if len(r.Reason) > maxPanicText {
			r.Reason = r.Reason[:maxPanicText]
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= l.max {
		copy(l.entries, l.entries[1:])
		l.entries = l.entries[:len(l.entries)-1]
	}
	l.entries = append(l.entries, r)
}

func (l *reportLog) snapshot() []Report {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Report(nil), l.entries...)
}
