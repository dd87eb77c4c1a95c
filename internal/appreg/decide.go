package appreg

import (
	"math"
	"slices"
	"time"
)

// Timing holds the lease parameters. Lease and RenewEvery are the holder's;
// Drift and Margin are what a node assumes of every other node: set them
// alike on all of them (or larger where unsure).
type Timing struct {
	// Lease is how long a holder may run after it proposed a renewal that
	// was then committed, counted on its own clock from the proposal.
	Lease time.Duration
	// RenewEvery is how often a holder proposes a renewal (well under
	// Lease, so a lost proposal or a leader election does not end it).
	RenewEvery time.Duration
	// Drift bounds the rate error of every node's clock: over a real
	// interval t a clock advances between t*(1-Drift) and t*(1+Drift).
	// Clocks never jump (Go's monotonic clock).
	Drift float64
	// Margin covers what the lease arithmetic does not: how long a node
	// takes to notice that its lease ended (its tick interval) and to stop
	// (kill) its instance.
	Margin time.Duration
}

// Wait is how long a node waits, on its own clock, after it saw a renewal of
// lease d committed, before it may take the renewer's instance for stopped:
// d*(1+Drift)/(1-Drift) + Margin, rounded up. The renewer proposed that
// renewal before anyone saw it committed and runs at most d of its own
// clock from the proposal, at most d/(1-Drift) of real time; the waiter's
// clock takes at least Wait/(1+Drift) of real time to count Wait.
func (t Timing) Wait(d time.Duration) time.Duration {
	f := float64(d) * (1 + t.Drift) / (1 - t.Drift)
	return time.Duration(math.Ceil(f)) + t.Margin
}

// Lease is a holder's own view of its lease on an application.
type Lease struct {
	Gen   uint64    // the assignment generation it was renewed in
	Until time.Time // on the holder's clock: proposal time + lease
}

// Observed is a node's own observation of an application's last renewal
// (or assignment): when it applied it, on its own clock, and the lease
// asked for.
type Observed struct {
	At    time.Time
	Lease time.Duration
}

// MayRun says whether node self may run application a now (its own clock):
// the application is desired running, self holds its assignment, self's
// lease of that generation (a renewal it proposed and saw committed) has not
// ended, and self has waited Wait since it saw the last renewal of any
// earlier generation committed (prev; zero if it saw none), so the previous
// holder has stopped. See the package documentation for the argument.
func MayRun(a App, self string, l Lease, prev Observed, now time.Time, t Timing) bool {
	if a.Desired != Running || a.Node != self || a.Gen == 0 {
		return false
	}
	if l.Gen != a.Gen || !now.Before(l.Until) {
		return false
	}
	if !prev.At.IsZero() && now.Before(prev.At.Add(t.Wait(prev.Lease))) {
		return false
	}
	return true
}

// Rank is node's position in a's preference list, len(Prefer) if absent.
func Rank(a App, node string) int {
	if i := slices.Index(a.Prefer, node); i >= 0 {
		return i
	}
	return len(a.Prefer)
}

// Place picks the node that should run a: the first live node of its
// preference list; else (no preference list, or none of it live) the live
// node with the fewest applications (load), the first in name order among
// equals. "" when no node is live.
func Place(a App, live []string, load map[string]int) string {
	for _, p := range a.Prefer {
		if slices.Contains(live, p) {
			return p
		}
	}
	best := ""
	for _, n := range sortedCopy(live) {
		if best == "" || load[n] < load[best] {
			best = n
		}
	}
	return best
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

// ReleasedByFor is how long, counted in the renewals of the application
// accepted since its last release (each RenewEvery apart), takeover does
// not move it back to the node that released it: that node was draining,
// then restarted; once it runs again it is preferred again. A later
// assignment ends it at once (it clears App.ReleasedBy).
const ReleasedByFor = 10 * time.Minute

// releasedLongAgo reports whether a's last release is ReleasedByFor old,
// as its renewals since count it.
func releasedLongAgo(a App, t Timing) bool {
	n := a.Renewals - a.ReleaseRenewals
	return n >= uint64(ReleasedByFor/t.RenewEvery)
}

// Plan returns the assignments the leader should propose now, each a
// compare-and-set on the current generation: an application desired
// running and unassigned goes to Place; one whose holder is not live moves
// once the holder's last renewal (or its assignment), as seen by the
// leader, is Wait old, so a holder that is only slow to reach the leader is
// not moved while it may still be running; one with Takeover moves to a
// live node earlier in its preference list than its holder at once (the new
// holder waits for the old holder's lease itself, see MayRun). Safety does
// not depend on Plan: a wrong or stale plan costs availability, never a
// second instance.
func Plan(s *State, live []string, seen map[string]Observed, now time.Time, t Timing) []Command {
	load := map[string]int{}
	for _, a := range s.apps {
		if a.Desired == Running && a.Node != "" {
			load[a.Node]++
		}
	}
	var out []Command
	for _, name := range s.names() {
		a := s.apps[name]
		if a.Desired != Running {
			continue
		}
		others := load
		if a.Node != "" {
			others = map[string]int{}
			for k, v := range load {
				others[k] = v
			}
			others[a.Node]--
		}
		target := Place(*a, live, others)
		if target == "" || target == a.Node {
			continue
		}
		switch {
		case a.Node == "":
		case !slices.Contains(live, a.Node):
			o, ok := seen[name]
			if !ok || now.Before(o.At.Add(t.Wait(o.Lease))) {
				continue
			}
		case a.Takeover && Rank(*a, target) < Rank(*a, a.Node) && (target != a.ReleasedBy || releasedLongAgo(*a, t)):
			// Not back to a node that released it, for a while: it is
			// draining, to stop (a rolling restart); back up, it is
			// preferred again.
		default:
			continue
		}
		out = append(out, Command{Op: OpAssign, App: name, Node: target, Gen: a.Gen})
	}
	return out
}
