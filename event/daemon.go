package event

import "time"

// Events of a daemon (package daemon, `actord run`): its cluster membership
// and the supervision of its services. The daemon emits them on its bus
// (Daemon.Bus), with the runtime, remote and supervision events; docs/events.md
// lists them all.

// Member is a cluster member, as the membership events describe it.
type Member struct {
	Name   string // its node name, unique in the cluster
	Addr   string // its remote (actor traffic) address
	Gossip string // its gossip (membership) address
	Self   bool   // this daemon
}

// MemberChanged is emitted by a daemon when its cluster membership agent
// sees a member join (or come back), leave on purpose, fail (stop answering
// and be declared dead), or change its metadata. Change is "join",
// "leave", "fail" or "update". The agent has already told the remote node
// of a failure when it is emitted.
type MemberChanged struct {
	Change string
	Member Member
	Time   time.Time
}

// Membership is the live cluster membership as a daemon sees it: its
// members sorted by name, itself included, members whose failure is only
// suspected included. The daemon emits it with a stateful emitter (see
// Stateful) once its agent runs and after each MemberChanged, so a new
// subscriber is first given the current membership. Members is shared by
// every subscriber: read it, do not modify it.
type Membership struct {
	Members []Member
	Time    time.Time
}

// ServiceFailed is emitted by a daemon when one of the services of its
// service tree (the remote node, the cluster agent, the debug and metrics
// servers) returned an error or panicked. The tree restarts it unless
// Restarting is false (the daemon is stopping, or the service asked not
// to be restarted).
type ServiceFailed struct {
	Service    string // as the tree names it, such as "remote-node"
	Err        error  // its error, or the panic's message
	Panicked   bool
	Restarting bool
	Time       time.Time
}
