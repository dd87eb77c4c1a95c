// Package debug is actord's live debugger and observability: what an
// operator woken at 3 a.m. attaches to a running daemon to see which loops
// are busy, which actors exist and what state they hold, the last messages
// each loop processed and what they changed, and which actors crashed and
// what they received just before.
//
// # Recording
//
// A [Recorder] is installed as the System's event hook ([Install], then
// [Recorder.Attach]). For every event a loop processes it writes, on that
// loop's goroutine, one fixed-size record into the loop's ring (fixed memory,
// [Config.RingSize], by default sized so that all loops stay within
// [Config.MemoryBudget], 64 MiB): sequence number, time, sender, receiver,
// kind, message type, a bounded JSON rendering of the payload
// ([PayloadBytes]), handler duration and outcome (ok, error, crash). Only the
// loop writes its ring, under a per-loop mutex that readers take briefly (a
// chunk of records at a time), so a dump never stops a loop for long and
// works even while the loop is stuck in a long handler.
//
// # State and diffs
//
// An actor exposes its state by implementing [StateReader]; with state
// tracing on for it ([Recorder.SetTraceActor], [Recorder.SetTraceLoop],
// [Config.TraceState]), each event that changes its state records the new
// state and the JSON Patch (RFC 6902) from the previous one, so the debugger
// shows the diff of every event and can step back through recent states
// ([Recorder.State]). An actor that implements [StatePatcher] can have its
// state replaced by an operator ([Recorder.Patch], like Erlang's
// sys:replace_state); the patch is recorded in the ring as an operator event.
//
// # Crash log
//
// The last crashes ([Config.Crashes], 100) are kept with the panic value,
// the stack, the supervisor path (from the supervisor's report) and copies of
// the last messages the actor handled before ([Config.CrashContext], 20), so
// they survive the ring wrapping.
//
// # Serving
//
// [NewServer] serves the recorder over HTTP on localhost: the dump protocol
// (JSON, [ProtocolVersion], documented in docs/debugging.md), a live event
// stream, Prometheus metrics ([Recorder.Families], [WriteMetrics]) and
// the runtime's profiles (what net/http/pprof serves, on this server's mux
// only: nothing is registered on http.DefaultServeMux). Access is a capability: a 256-bit random token written to
// a file of mode 0600; a request without it gets 401 and nothing else.
// [Client] is the Go client the `actord debug` command uses.
package debug
