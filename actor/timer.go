package actor

import "time"

// Timer is a handle on a message scheduled with Context.After or
// Context.Every, or a function scheduled with Context.AfterFunc. It is a small value; making one does not allocate once the
// loop's tables have grown.
type Timer struct {
	ls       *loopState
	idx, gen uint32
}

type timerEntry struct {
	to     Ref
	msg    any
	fn     func(*Context) // AfterFunc's, instead of msg
	k      cont           // the promise seam's AfterFunc: k.k's method, instead of fn
	inc    uint32         // AfterFunc's: the incarnation of to that set it
	when   time.Time
	period time.Duration
	gen    uint32
	active bool
}

type timerTable struct {
	entries []timerEntry
	free    []uint32
	active  int
}

func (ls *loopState) schedule(to Ref, msg any, d, period time.Duration) Timer {
	return ls.addTimer(to, msg, nil, 0, d, period)
}

func (ls *loopState) addTimer(to Ref, msg any, fn func(*Context), inc uint32, d, period time.Duration) Timer {
	t := &ls.timers
	var idx uint32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		t.entries = append(t.entries, timerEntry{})
		idx = uint32(len(t.entries) - 1)
	}
	e := &t.entries[idx]
	e.to, e.msg, e.fn, e.inc, e.period, e.active = to, msg, fn, inc, period, true
	e.when = ls.loop.Now().Add(d)
	t.active++
	ls.loop.Schedule(e.when, envelope{kind: kTimer, pidx: idx, pgen: e.gen})
	return Timer{ls: ls, idx: idx, gen: e.gen}
}

func (ls *loopState) releaseTimer(idx uint32) {
	t := &ls.timers
	e := &t.entries[idx]
	*e = timerEntry{gen: e.gen + 1}
	t.free = append(t.free, idx)
	t.active--
}

func (ls *loopState) fireTimer(idx, gen uint32) {
	t := &ls.timers
	if int(idx) >= len(t.entries) || t.entries[idx].gen != gen || !t.entries[idx].active {
		ls.garbage--
		return
	}
	e := &t.entries[idx]
	to, msg := e.to, e.msg
	s := ls.lookup(to)
	if s == nil {
		ls.releaseTimer(idx) // its actor is gone: the timer dies with it
		return
	}
	if fn, k := e.fn, e.k; fn != nil || k.k != nil {
		inc := e.inc
		ls.releaseTimer(idx)
		ls.runCont(to, inc, k, fn, nil, nil)
		return
	}
	if e.period > 0 {
		now := ls.loop.Now()
		e.when = e.when.Add(e.period)
		if e.when.Before(now) {
			e.when = now.Add(e.period) // fell behind: skip, don't burst
		}
		ls.loop.Schedule(e.when, envelope{kind: kTimer, pidx: idx, pgen: gen})
	} else {
		ls.releaseTimer(idx)
	}
	if s.state == slotSuspended || s.upg != nil {
		ls.deliver(&envelope{kind: kSend, to: to, msg: msg, pidx: timerFired})
		return
	}
	ls.invoke(s, to, Ref{}, msg, nil, EventTimer)
}

// Cancel stops the timer. It reports whether the timer was active (a one-shot
// timer that already fired is not). It must be called on the timer's loop.
func (t Timer) Cancel() bool {
	if t.ls == nil {
		return false
	}
	ls := t.ls
	tt := &ls.timers
	if int(t.idx) >= len(tt.entries) || tt.entries[t.idx].gen != t.gen || !tt.entries[t.idx].active {
		return false
	}
	ls.releaseTimer(t.idx)
	ls.garbage++
	ls.maybeCompact()
	return true
}

// maybeCompact purges invalidated entries from the timer heap when they
// outnumber the live ones, so cancelled timers and answered asks do not hold
// memory until their deadline. The cost is amortised: at least 1024 dead
// entries are removed per linear pass.
func (ls *loopState) maybeCompact() {
	if ls.garbage < 1024 || ls.garbage < ls.loop.Timers()/2 {
		return
	}
	ls.loop.CompactTimers(func(e *envelope) bool {
		switch e.kind {
		case kDeadline:
			p := ls.promises.get(e.pidx, e.pgen)
			return p != nil && p.state == pPending && p.deadlined
		case kTimer:
			t := &ls.timers
			return int(e.pidx) < len(t.entries) && t.entries[e.pidx].gen == e.pgen && t.entries[e.pidx].active
		}
		return true
	})
	ls.garbage = 0
}
