package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/actord/actord/actor"
	evbus "github.com/actord/actord/event"
)

// ReportKind says what a Report is about.
type ReportKind uint8

// The kinds of supervisor report.
const (
	// ChildCrashed: the child panicked (Panic and Stack are set).
	ChildCrashed ReportKind = iota + 1
	// ChildExited: the child stopped by itself, or was stopped by someone
	// other than its supervisor (Reason is its reason, nil if normal).
	ChildExited
	// ChildRestarted: the child was restarted (Restarts counts the restarts
	// in the intensity window, this one included).
	ChildRestarted
	// ChildStartFailed: starting or restarting the child failed (Reason).
	ChildStartFailed
	// ChildKilled: the child did not stop within its shutdown timeout and
	// was killed (or its loop will kill it when it gets to the request).
	ChildKilled
	// GaveUp: the restart intensity was exceeded (or the initial start
	// failed); the supervisor stops all its children and then itself with
	// Reason.
	GaveUp
	// ShutdownError: a child the supervisor stopped ended with a reason
	// other than the shutdown it was asked for (Reason; it chose it by
	// stopping itself in its Terminate), as OTP's shutdown_error: anything
	// but shutdown for a permanent child; anything but normal, shutdown or
	// a reason wrapping shutdown for the others.
	ShutdownError
)

var reportNames = [...]string{"", "child_crashed", "child_exited", "child_restarted", "child_start_failed", "child_killed", "gave_up", "shutdown_error"}

func (k ReportKind) String() string {
	if int(k) < len(reportNames) {
		return reportNames[k]
	}
	return "unknown"
}

// Report is a structured crash or restart report. A supervisor logs each one
// through its Spec.Logger (log/slog) and publishes it, as a *Report in
// Event.Msg of an actor.EventReport, to the loop's event hook, where the
// debugger finds them. Reports are not retained by the supervisor; a hook
// may keep the pointer.
type Report struct {
	Kind       ReportKind
	Supervisor string    // the supervisor's path, e.g. "root/db/pool"
	Self       actor.Ref // the supervisor
	ChildID    string
	Child      actor.Ref     // the child's ref, when it has one
	Reason     error         // why the child ended (a *actor.CrashError for a crash), or why the supervisor gave up
	Panic      any           // the panic value, for ChildCrashed
	Stack      []byte        // the panic's stack as text, for ChildCrashed (nil with actor.Config.LazyStacks)
	PCs        []uintptr     // the panic's stack as program counters, with actor.Config.LazyStacks
	Restarts   int           // restarts in the current intensity window (for GaveUp: the MaxR exceeded)
	Within     time.Duration // for GaveUp: the intensity period MaxT
	Time       time.Time     // on the loop's clock
}

func (r *Report) String() string {
	return fmt.Sprintf("%s %s child=%s ref=%v restarts=%d reason=%v", r.Supervisor, r.Kind, r.ChildID, r.Child, r.Restarts, r.Reason)
}

// GaveUpEvent describes a GaveUp report as an evbus.SupervisorGaveUp for the
// runtime's event bus; ok is false for other kinds.
func (r *Report) GaveUpEvent() (e evbus.SupervisorGaveUp, ok bool) {
	if r.Kind != GaveUp {
		return e, false
	}
	return evbus.SupervisorGaveUp{Supervisor: r.Self, Loop: r.Self.Loop(), Restarts: r.Restarts,
		Within: r.Within, Reason: r.Reason, Time: r.Time}, true
}

// StackText returns the panic's stack as text (formatting PCs if needed).
func (r *Report) StackText() []byte {
	return (&actor.CrashError{Stack: r.Stack, PCs: r.PCs}).StackText()
}

// level is the log level of a report of kind with reason.
func level(kind ReportKind, reason error) slog.Level {
	switch {
	case kind == ChildRestarted, kind == ChildExited && reason == nil:
		return slog.LevelInfo
	}
	return slog.LevelError
}

// wants reports whether a report of kind with reason would be read (by the
// event hook or the logger), so that the hot path of a crash and restart
// builds none that nobody reads.
func (s *sup) wants(c *actor.Context, kind ReportKind, reason error) bool {
	return c.Reporting() || s.log.Enabled(context.Background(), level(kind, reason))
}

// report logs rep and hands it to the hook.
func (s *sup) report(c *actor.Context, rep *Report) {
	rep.Supervisor, rep.Self, rep.Time = s.path, c.Self(), c.Now()
	if rep.Restarts == 0 {
		rep.Restarts = s.window.count()
	}
	c.Report(rep)
	ctx, lv := context.Background(), level(rep.Kind, rep.Reason)
	if !s.log.Enabled(ctx, lv) {
		return
	}
	attrs := []slog.Attr{
		slog.String("supervisor", rep.Supervisor),
		slog.String("child", rep.ChildID),
		slog.String("ref", rep.Child.String()),
		slog.Int("restarts", rep.Restarts),
	}
	if rep.Reason != nil {
		attrs = append(attrs, slog.String("reason", rep.Reason.Error()))
	}
	if rep.Kind == ChildCrashed {
		attrs = append(attrs, slog.String("panic", fmt.Sprint(rep.Panic)), slog.String("stack", string(rep.StackText())))
	}
	s.log.LogAttrs(ctx, lv, "supervisor: "+rep.Kind.String(), attrs...)
}
