package actor

import "time"

// EventKind says what a loop processed.
type EventKind uint8

// The kinds of event a loop reports to its hook.
const (
	EventSend         EventKind = iota + 1 // a one-way message was handled
	EventAsk                               // a request was handled
	EventCall                              // a synchronous call was handled
	EventTimer                             // a timer message was handled
	EventContinuation                      // a promise continuation ran
	EventSpawn                             // an actor started
	EventStop                              // an actor stopped
	EventRestart                           // an actor was re-created in its slot
	EventCrash                             // a handler, continuation or start panicked
	EventDropped                           // a message could not be delivered (its sender was told when it could be)
	EventReport                            // an actor published a structured report (Context.Report), e.g. a supervisor's crash or restart report in Msg
)

var kindNames = [...]string{"", "send", "ask", "call", "timer", "continuation", "spawn", "stop", "restart", "crash", "dropped", "report"}

func (k EventKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is one thing a loop processed, as reported to a Hook. The loop reuses
// the Event it passes: a hook must copy what it keeps.
type Event struct {
	Seq      uint64        // per-loop sequence number, from 1
	Loop     int           // loop index
	Kind     EventKind     // what happened
	From     Ref           // sender (zero for plain goroutines, timers and the runtime)
	To       Ref           // the actor concerned
	Msg      any           // the message, when there is one
	Start    time.Time     // when handling began, on the loop's clock
	Duration time.Duration // how long the handler ran (by the CPU time-stamp counter where it is invariant, else the monotonic clock)
	Err      error         // the handler's error, the drop reason, or the stop reason
	Crash    *Crash        // set for EventCrash
	// Actor is the instance whose handler or continuation ran, for
	// EventSend, EventAsk, EventCall, EventTimer and EventContinuation (nil
	// for the other kinds). It lets a hook read the actor's state on its
	// loop (a debugger's state tracing); it must not be kept or used after
	// the hook returns.
	Actor Actor
}

// Hook receives every event a loop processes, one event at a time, on the
// goroutine running the loop (its own, or an asker's it is lent to: see
// System.Ask and Config.LendTimedAsks). It must not block and must not
// retain the *Event. With no hook the cost per event is one nil check.
type Hook func(*Event)

// Crash describes a panic in an actor: in a handler, a continuation or its
// Start method. It is passed to Config.OnCrash and to the event hook.
type Crash struct {
	Actor       Ref       // the actor that crashed
	Name        string    // its name (SpawnOption Name), if any
	Loop        int       // loop index
	Incarnation uint32    // how many times the slot's actor had been started
	Value       any       // the value passed to panic
	Stack       []byte    // stack of the panic (nil with Config.LazyStacks: see StackText)
	PCs         []uintptr // program counters of the stack, with Config.LazyStacks
	Msg         any       // the message being handled, if any
	From        Ref       // its sender, if any
	Time        time.Time // on the loop's clock
	Supervised  bool      // the actor's parent decides what happens next
}
