package appreg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/actord/actord/internal/ratelog"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// ErrNoLeader is returned by Propose when no leader is known: the command
// was dropped, retry later.
var ErrNoLeader = errors.New("appreg: no raft leader known")

// ErrConfig is returned by NewReplica for an unusable configuration.
var ErrConfig = errors.New("appreg: bad config")

// Member is one replica of the registry: its raft ID and the name of the
// node (daemon) it runs on, the name assignments use.
type Member struct {
	ID   uint64
	Node string
}

// Config configures a Replica. Every replica of a registry must be given the
// same Members.
type Config struct {
	// ID is this replica's raft ID, one of Members.
	ID uint64
	// Members are all replicas, fixed for the registry's life (membership
	// changes are not supported yet). Applications run on these nodes.
	Members []Member
	// Store keeps raft's state across restarts.
	Store Store
	// Timing is the lease parameters, see Timing.
	Timing Timing
	// TickInterval is how often (on this node's clock) the driver calls
	// Tick. ElectionTicks*TickInterval must be under Timing.Lease, so a
	// leader election does not cost a holder its lease.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks are raft's (defaults 10 and 1).
	ElectionTicks, HeartbeatTicks int
	// Incarnation distinguishes this start of the node from its earlier
	// ones (a random number is fine); it must differ on every start, or a
	// renewal proposed by an earlier process could be taken for one of this
	// process. Must not be 0.
	Incarnation uint64
	// SnapshotEvery is how many applied entries trigger a snapshot and log
	// compaction (default 1000).
	SnapshotEvery uint64
	// Logger receives raft's log lines (rate-limited); nil discards them.
	Logger *slog.Logger
}

// Applied is one committed command as applied to the state: Err is why it
// was rejected (nil if accepted), identical on every replica.
type Applied struct {
	Index uint64
	Cmd   Command
	Err   error
}

// Ready is the output of a Replica since the last call of Replica.Ready.
type Ready struct {
	// Messages are to be sent to other replicas, by their Member ID.
	// The replica has already made durable what they depend on.
	Messages []*pb.Message
	// Applied are the commands committed and applied, in log order.
	Applied []Applied
}

// Grant is an application this node may run now, until Until on its own
// clock unless renewed. Handover is what the release that made this
// generation recorded (nil if none did).
type Grant struct {
	App      string
	Spec     []byte
	Gen      uint64
	Until    time.Time
	Handover []byte
}

// ErrNotHolder is returned by Hold and Release for an application this
// node does not hold (or no longer holds in the generation given).
var ErrNotHolder = errors.New("appreg: not the holder")

// ErrNotMember is returned by Release to a node that is no member of the
// registry: applications run on members only.
var ErrNotMember = errors.New("appreg: not a member of the registry")

// release is a release this replica proposes until it is applied or the
// generation moves on.
type release struct {
	gen      uint64
	to       string
	handover []byte
	ended    bool
}

type pendingRenew struct {
	app  string
	gen  uint64
	sent time.Time
}

type inflight struct {
	gen uint64
	at  time.Time
}

// Replica is one replica of the application registry: etcd raft's RawNode,
// the registry state applied from its log, and the node's own observations
// (its clock readings of renewals and its leases). It does no I/O of its own
// beyond its Store, starts no goroutine and reads no clock: the driver feeds
// it messages (Step), time (Tick) and commands (Propose), and then takes its
// output (Ready). It is not safe for concurrent use.
type Replica struct {
	cfg    Config
	self   string
	byID   map[uint64]string
	rn     *raft.RawNode
	ms     *raft.MemoryStorage
	state  *State
	cs     *pb.ConfState
	snapAt uint64
	now    time.Time
	leader bool

	out     []*pb.Message
	applied []Applied

	// Elections are timed here, from a seeded source, not by raft (which
	// draws its timeouts from crypto/rand): a seeded run replays exactly.
	rng      *rand.Rand
	elapsed  int // ticks since the leader was last heard, as a non-leader
	timeout  int // ticks before campaigning: ElectionTicks plus a random part
	lastLead uint64
	// The last leader this replica heard, and when: a replica that takes
	// over from it judges it by that, not as a member it never heard.
	leadHeard   uint64
	leadHeardAt time.Time

	heard     map[uint64]time.Time    // last answer (append or heartbeat response) from each member
	appended  map[uint64]time.Time    // when each entry not yet applied came into this replica's log
	lastRenew map[string]Observed     // last accepted renewal of each app, any generation
	prev      map[string]Observed     // last renewal of an earlier generation than the current
	seen      map[string]Observed     // latest of lastRenew and the assignment
	leases    map[string]Lease        // this node's own leases
	pending   map[uint64]pendingRenew // this node's renewals in flight, by Seq
	seq       uint64
	lastSent  map[string]time.Time
	inflight  map[string]inflight
	held      map[string]uint64  // generations this process stopped running for a release
	releases  map[string]release // releases to propose (again) while their generation holds
}

func (c *Config) check() error {
	if c.Store == nil || c.Incarnation == 0 || c.TickInterval <= 0 {
		return fmt.Errorf("%w: Store, Incarnation and TickInterval are required", ErrConfig)
	}
	t := c.Timing
	if t.Lease <= 0 || t.Lease > MaxLease || t.RenewEvery <= 0 || t.RenewEvery >= t.Lease ||
		t.Drift < 0 || t.Drift >= 0.5 || t.Margin < 0 {
		return fmt.Errorf("%w: timing needs 0 < RenewEvery < Lease <= %v, 0 <= Drift < 0.5, Margin >= 0", ErrConfig, MaxLease)
	}
	if time.Duration(c.ElectionTicks)*c.TickInterval >= t.Lease {
		return fmt.Errorf("%w: election timeout %v must be under the lease %v",
			ErrConfig, time.Duration(c.ElectionTicks)*c.TickInterval, t.Lease)
	}
	ids, names := map[uint64]bool{}, map[string]bool{}
	for _, m := range c.Members {
		if m.ID == 0 || !validName(m.Node) || ids[m.ID] || names[m.Node] {
			return fmt.Errorf("%w: members need distinct non-zero IDs and distinct node names", ErrConfig)
		}
		ids[m.ID], names[m.Node] = true, true
	}
	if !ids[c.ID] {
		return fmt.Errorf("%w: ID %d is not a member", ErrConfig, c.ID)
	}
	return nil
}

// NewReplica starts a replica at time now (its node's clock) from what its
// Store holds; an empty Store bootstraps a new registry of cfg.Members.
func NewReplica(cfg Config, now time.Time) (*Replica, error) {
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks = 10
	}
	if cfg.HeartbeatTicks == 0 {
		cfg.HeartbeatTicks = 1
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = 1000
	}
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Replica{
		cfg: cfg, byID: map[uint64]string{}, now: now, state: NewState(),
		heard: map[uint64]time.Time{}, appended: map[uint64]time.Time{}, lastRenew: map[string]Observed{}, prev: map[string]Observed{},
		seen: map[string]Observed{}, leases: map[string]Lease{}, pending: map[uint64]pendingRenew{},
		lastSent: map[string]time.Time{}, inflight: map[string]inflight{},
		held: map[string]uint64{}, releases: map[string]release{},
	}
	for _, m := range cfg.Members {
		r.byID[m.ID] = m.Node
	}
	r.self = r.byID[cfg.ID]

	hs, snap, ents, err := cfg.Store.Load()
	if err != nil {
		return nil, fmt.Errorf("appreg: load store: %w", err)
	}
	if hs == nil && snap == nil && len(ents) == 0 {
		// A new registry: raft's recommended bootstrap, a snapshot that
		// holds only the voters (index and term 0).
		voters := make([]uint64, 0, len(cfg.Members))
		for _, m := range cfg.Members {
			voters = append(voters, m.ID)
		}
		slices.Sort(voters)
		snap = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: &pb.ConfState{Voters: voters},
			Index: new(uint64(0)), Term: new(uint64(0))}}
		if err := cfg.Store.Save(nil, snap, nil); err != nil {
			return nil, fmt.Errorf("appreg: bootstrap store: %w", err)
		}
	}
	r.ms = raft.NewMemoryStorage()
	if snap != nil {
		if err := r.ms.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("appreg: load snapshot: %w", err)
		}
		if err := r.restore(snap); err != nil {
			return nil, err
		}
	}
	if hs != nil {
		if err := r.ms.SetHardState(hs); err != nil {
			return nil, fmt.Errorf("appreg: load hard state: %w", err)
		}
	}
	if err := r.ms.Append(ents); err != nil {
		return nil, fmt.Errorf("appreg: load entries: %w", err)
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   r.ms,
		Applied:                   r.state.Index(),
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  4 << 20,
		MaxUncommittedEntriesSize: 4 << 20,
		MaxInflightMsgs:           64,
		CheckQuorum:               true, // a leader that lost the majority steps down
		PreVote:                   true, // a node coming back from a partition does not depose the leader
		Logger:                    newRaftLogger(cfg.Logger),
	}
	r.rn, err = raft.NewRawNode(rc)
	if err != nil {
		return nil, fmt.Errorf("appreg: raft: %w", err)
	}
	for id := range r.byID {
		r.heard[id] = now
	}
	r.rng = rand.New(rand.NewPCG(cfg.Incarnation, cfg.ID))
	r.resetElection()
	return r, nil
}

// restore replaces the state by a snapshot's. The node's clock readings of
// earlier renewals are lost, so it takes them all as seen now: the
// conservative side, since it can only lengthen waits.
func (r *Replica) restore(snap *pb.Snapshot) error {
	st, err := UnmarshalState(snap.GetData())
	if err != nil {
		return fmt.Errorf("appreg: restore snapshot: %w", err)
	}
	if idx := snap.GetMetadata().GetIndex(); idx > st.index {
		st.index = idx
	}
	r.state = st
	r.cs = snap.GetMetadata().GetConfState()
	r.snapAt = snap.GetMetadata().GetIndex()
	clear(r.lastRenew)
	clear(r.prev)
	clear(r.seen)
	clear(r.leases)
	for idx := range r.appended {
		if idx <= r.snapAt {
			delete(r.appended, idx)
		}
	}
	for name, a := range st.apps {
		if a.Renewals > 0 {
			o := Observed{At: r.now, Lease: a.LastLease}
			r.lastRenew[name], r.prev[name], r.seen[name] = o, o, o
		} else if a.Node != "" {
			r.seen[name] = Observed{At: r.now, Lease: r.cfg.Timing.Lease}
		}
	}
	return nil
}

func (r *Replica) advance(now time.Time) {
	if now.After(r.now) {
		r.now = now
	}
}

// Node is this replica's node name.
func (r *Replica) Node() string { return r.self }

// State is the registry as applied so far. The caller must not change it.
func (r *Replica) State() *State { return r.state }

// Leader is the raft ID of the leader this replica knows, 0 if none.
func (r *Replica) Leader() uint64 { return r.rn.BasicStatus().Lead }

// Term is the replica's raft term.
func (r *Replica) Term() uint64 { return r.rn.BasicStatus().GetTerm() }

// Step feeds the replica a raft message from the network, received at now.
// It must come from a member (the driver authenticates the sender and checks
// that it is m.From) to this replica.
func (r *Replica) Step(m *pb.Message, now time.Time) error {
	r.advance(now)
	if err := checkMessage(m); err != nil {
		return err
	}
	if m.GetTo() != r.cfg.ID {
		return fmt.Errorf("%w: addressed to %d, this is %d", ErrBadMessage, m.GetTo(), r.cfg.ID)
	}
	if _, ok := r.byID[m.GetFrom()]; !ok || m.GetFrom() == r.cfg.ID {
		return fmt.Errorf("%w: from %d, not another member", ErrBadMessage, m.GetFrom())
	}
	switch m.GetType() {
	case pb.MsgAppResp, pb.MsgHeartbeatResp:
		// Answers prove the member hears this replica too. A member that
		// only sends (it hears nobody, and campaigns) is not live: it
		// cannot renew, and must not hold up its applications' failover.
		r.heard[m.GetFrom()] = r.now
	}
	if err := r.rn.Step(m); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return nil // forwarded to a replica no longer leader: lost, as the network may lose it
		}
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	switch m.GetType() {
	case pb.MsgApp, pb.MsgHeartbeat, pb.MsgSnap:
		if r.rn.BasicStatus().Lead == m.GetFrom() {
			r.elapsed = 0 // the leader is alive
			r.leadHeard, r.leadHeardAt = m.GetFrom(), r.now
		}
	}
	return nil
}

// Propose proposes a command at now. nil means raft took it, not that it
// will commit: watch Ready's Applied.
func (r *Replica) Propose(c Command, now time.Time) error {
	r.advance(now)
	b, err := EncodeCommand(c)
	if err != nil {
		return err
	}
	if err := r.rn.Propose(b); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return fmt.Errorf("%w: %w", ErrNoLeader, err)
		}
		return fmt.Errorf("appreg: propose: %w", err)
	}
	return nil
}

// Tick advances raft by one tick at now (the driver calls it every
// TickInterval), renews this node's leases when due, and, on the leader,
// proposes the assignments Plan asks for.
func (r *Replica) Tick(now time.Time) {
	r.advance(now)
	r.tickRaft()
	r.prune()
	r.renew()
	if r.leader {
		r.plan()
	}
}

// tickRaft ticks raft as Tick would, except that a non-leader campaigns
// when this replica's seeded timer says so: raft's own election timer is
// kept from firing (TickQuiesced advances its clock without campaigning),
// while the leader's heartbeats and quorum checks, which draw nothing
// random, run as usual.
func (r *Replica) tickRaft() {
	st := r.rn.BasicStatus()
	if st.RaftState == raft.StateLeader {
		r.rn.Tick()
		return
	}
	r.rn.TickQuiesced()
	if st.Lead != r.lastLead {
		r.lastLead = st.Lead
		r.elapsed = 0
	}
	r.elapsed++
	if r.elapsed >= r.timeout {
		r.resetElection()
		_ = r.rn.Campaign() // refused only when it cannot lead, as raft's own timer
	}
}

// resetElection draws the next election timeout in [ElectionTicks,
// 2*ElectionTicks), as raft does.
func (r *Replica) resetElection() {
	r.elapsed = 0
	r.timeout = r.cfg.ElectionTicks + r.rng.IntN(r.cfg.ElectionTicks)
}

func (r *Replica) prune() {
	for seq, p := range r.pending {
		if !r.now.Before(p.sent.Add(r.cfg.Timing.Lease)) {
			delete(r.pending, seq)
		}
	}
	for app, l := range r.leases {
		if !r.now.Before(l.Until) {
			delete(r.leases, app)
		}
	}
}

func (r *Replica) renew() {
	t := r.cfg.Timing
	for _, name := range r.state.names() {
		a := r.state.apps[name]
		if a.Desired != Running || a.Node != r.self {
			continue
		}
		if last, ok := r.lastSent[name]; ok && r.now.Before(last.Add(t.RenewEvery)) {
			continue
		}
		if rl, ok := r.releases[name]; ok && r.held[name] == a.Gen && rl.gen == a.Gen {
			// Released: not renewed, its instance has been ended. A
			// release not applied yet (lost, or its leader gone) is
			// proposed again. Held and not released yet, it is renewed:
			// its instance is still ending, under the lease.
			if r.proposeRelease(name, rl) == nil {
				r.lastSent[name] = r.now
			}
			continue
		}
		r.seq++
		// Recorded before proposing: the lease counts from a time no later
		// than any replica's applying the renewal.
		r.pending[r.seq] = pendingRenew{app: name, gen: a.Gen, sent: r.now}
		err := r.Propose(Command{Op: OpRenew, App: name, Node: r.self, Gen: a.Gen, Lease: t.Lease,
			Inc: r.cfg.Incarnation, Seq: r.seq}, r.now)
		if err != nil {
			delete(r.pending, r.seq)
			continue
		}
		r.lastSent[name] = r.now
	}
}

func (r *Replica) live() []string {
	// Twice raft's election timeout: a member stays live across a lost
	// heartbeat or two.
	timeout := 2 * time.Duration(r.cfg.ElectionTicks) * r.cfg.TickInterval
	out := []string{r.self}
	for id, at := range r.heard {
		if id != r.cfg.ID && r.now.Sub(at) < timeout {
			out = append(out, r.byID[id])
		}
	}
	slices.Sort(out)
	return out
}

func (r *Replica) plan() {
	for _, c := range Plan(r.state, r.live(), r.seen, r.now, r.cfg.Timing) {
		if f, ok := r.inflight[c.App]; ok && f.gen == c.Gen && r.now.Before(f.at.Add(r.cfg.Timing.Lease)) {
			continue
		}
		if r.Propose(c, r.now) == nil {
			r.inflight[c.App] = inflight{gen: c.Gen, at: r.now}
		}
	}
}

// MayRun says whether this node may run the application now (its clock):
// see the package function MayRun. A generation this node holds for a
// release (Hold) never may.
func (r *Replica) MayRun(app string, now time.Time) bool {
	r.advance(now)
	a, ok := r.state.apps[app]
	if !ok {
		return false
	}
	if g, held := r.held[app]; held && g == a.Gen {
		return false
	}
	return MayRun(*a, r.self, r.leases[app], r.prev[app], r.now, r.cfg.Timing)
}

// Hold is the first step of a graceful handover: from now on this process
// does not start the application again in the generation it holds, which
// it returns (MayRun and Grants leave it out). The caller then ends the
// instance it runs, which may take a while: until Release the generation
// is still renewed, and the instance must end by the lease's end
// (HeldUntil) all the same, as any other. Release stops the renewals.
func (r *Replica) Hold(app string, now time.Time) (uint64, error) {
	r.advance(now)
	a, ok := r.state.apps[app]
	if !ok || a.Desired != Running || a.Node != r.self || a.Gen == 0 {
		return 0, fmt.Errorf("%w: %q", ErrNotHolder, app)
	}
	r.held[app] = a.Gen
	return a.Gen, nil
}

// HeldUntil returns the end, on this node's clock, of the lease of the
// generation of app this process holds for a release (Hold): the instance
// still ending, or not known to have ended, must be gone by then. ok is
// false once there is none: not held, the generation moved on, or the
// lease has ended.
func (r *Replica) HeldUntil(app string, now time.Time) (until time.Time, ok bool) {
	r.advance(now)
	a, found := r.state.apps[app]
	if !found || r.held[app] != a.Gen || a.Node != r.self {
		return time.Time{}, false
	}
	l, has := r.leases[app]
	if !has || l.Gen != a.Gen || !r.now.Before(l.Until) {
		return time.Time{}, false
	}
	return l.Until, true
}

// Release proposes to give the application, held in generation gen
// (Hold), to node to, with handover for its next holder; ended says
// whether the caller knows that its instance has ended (if not, the
// release is not clean). It is proposed again every RenewEvery until
// applied or the generation moves on (a failover).
//
// The release is clean, and to may start without the lease wait, if this
// process has waited out the leases of the earlier generations (MayRun's
// condition 3): then, when the release commits, nothing of generation gen
// or earlier runs. A renewal of gen is accepted only before the release in
// the log, and the holder stopped before it proposed the release, so any
// lease the holder counts has no instance left to cover. State.Apply
// honours the claim only if every accepted renewal of gen was this
// process's: another process of the node (an earlier one whose renewal
// came late, a later one) may have run it. A release that is lost or late
// changes nothing: the holder does not run the application meanwhile and
// proposes the release again; if it is cut off, the leader moves the
// application as from a dead holder (after the wait), and a release of a
// generation that has moved on is rejected.
func (r *Replica) Release(app string, gen uint64, to string, handover []byte, ended bool, now time.Time) error {
	r.advance(now)
	if r.held[app] != gen {
		return fmt.Errorf("%w: %q is not held in generation %d", ErrNotHolder, app, gen)
	}
	a, ok := r.state.apps[app]
	if !ok || a.Node != r.self || a.Gen != gen {
		return fmt.Errorf("%w: %q of generation %d", ErrNotHolder, app, gen)
	}
	if !r.isMember(to) {
		return fmt.Errorf("%w: %q", ErrNotMember, to)
	}
	rl := release{gen: gen, to: to, handover: slices.Clone(handover), ended: ended}
	if _, err := EncodeCommand(r.releaseCmd(app, rl)); err != nil {
		return err
	}
	r.releases[app] = rl
	r.lastSent[app] = r.now
	return r.proposeRelease(app, rl)
}

func (r *Replica) isMember(node string) bool {
	for _, n := range r.byID {
		if n == node {
			return true
		}
	}
	return false
}

func (r *Replica) releaseCmd(app string, rl release) Command {
	p := r.prev[app]
	clean := rl.ended && (p.At.IsZero() || !r.now.Before(p.At.Add(r.cfg.Timing.Wait(p.Lease))))
	return Command{Op: OpRelease, App: app, Node: r.self, Gen: rl.gen, Inc: r.cfg.Incarnation,
		To: rl.to, Clean: clean, Handover: rl.handover}
}

func (r *Replica) proposeRelease(app string, rl release) error {
	return r.Propose(r.releaseCmd(app, rl), r.now)
}

// Grants lists the applications this node may run now, in name order. The
// driver starts what is listed and not running, and stops at once what runs
// and is not listed (or whose Until has passed on its clock).
func (r *Replica) Grants(now time.Time) []Grant {
	r.advance(now)
	var out []Grant
	for _, name := range r.state.names() {
		if r.MayRun(name, r.now) {
			a := r.state.apps[name]
			g := Grant{App: name, Spec: slices.Clone(a.Spec), Gen: a.Gen, Until: r.leases[name].Until}
			if a.HandoverGen == a.Gen {
				g.Handover = slices.Clone(a.Handover)
			}
			out = append(out, g)
		}
	}
	return out
}

// HasReady reports whether Ready has work: output of raft to persist,
// apply or send.
func (r *Replica) HasReady() bool { return r.rn.HasReady() || len(r.out) > 0 || len(r.applied) > 0 }

// Ready handles raft's output: persists it to the Store, applies committed
// commands, makes snapshots, and returns the messages to send and the
// commands applied since the last call. An error is the Store's (or a
// corrupt snapshot's): the replica must not be used further.
func (r *Replica) Ready() (Ready, error) {
	for r.rn.HasReady() {
		rd := r.rn.Ready()
		if rd.SoftState != nil {
			lead := rd.SoftState.RaftState == raft.StateLeader
			if lead && !r.leader {
				// Followers hear only the leader: give every other member
				// a fresh liveness window rather than judge it by old
				// news. The leader this replica last followed is judged
				// by when it last heard it: when it died with the
				// applications it held, they move a window after its
				// last heartbeat, not a window after this election.
				for id := range r.heard {
					r.heard[id] = r.now
				}
				if r.leadHeard != 0 && r.leadHeard != r.cfg.ID {
					r.heard[r.leadHeard] = r.leadHeardAt
				}
				// Used once: leading again later without having followed
				// anyone since, it must not judge that leader by old news.
				r.leadHeard, r.leadHeardAt = 0, time.Time{}
				clear(r.inflight)
			}
			r.leader = lead
		}
		var snap *pb.Snapshot
		if !raft.IsEmptySnap(rd.Snapshot) {
			snap = rd.Snapshot
			// Checked before it is saved: a snapshot that cannot be
			// restored, once saved, would fail every later start.
			if _, err := UnmarshalState(snap.GetData()); err != nil {
				return Ready{}, fmt.Errorf("appreg: snapshot refused: %w", err)
			}
		}
		if snap != nil || len(rd.Entries) > 0 || rd.HardState != nil {
			if err := r.cfg.Store.Save(rd.HardState, snap, rd.Entries); err != nil {
				return Ready{}, fmt.Errorf("appreg: save: %w", err)
			}
		}
		if snap != nil {
			if err := r.ms.ApplySnapshot(snap); err != nil {
				return Ready{}, fmt.Errorf("appreg: apply snapshot: %w", err)
			}
			if err := r.restore(snap); err != nil {
				return Ready{}, err
			}
		}
		if rd.HardState != nil {
			if err := r.ms.SetHardState(rd.HardState); err != nil {
				return Ready{}, fmt.Errorf("appreg: hard state: %w", err)
			}
		}
		if err := r.ms.Append(rd.Entries); err != nil {
			return Ready{}, fmt.Errorf("appreg: append: %w", err)
		}
		for _, e := range rd.Entries {
			// An entry replaced at the same index comes again here and
			// takes the later time. Bounded by the entries not yet
			// applied; past the bound an entry is observed when applied.
			idx := e.GetIndex()
			if _, replaced := r.appended[idx]; replaced || len(r.appended) < maxAppended {
				r.appended[idx] = r.now
			}
		}
		var snapTo []uint64
		for _, m := range rd.Messages {
			if m.GetType() == pb.MsgSnap {
				snapTo = append(snapTo, m.GetTo())
			}
		}
		r.out = append(r.out, rd.Messages...)
		for _, e := range rd.CommittedEntries {
			r.apply(e)
		}
		if err := r.maybeSnapshot(); err != nil {
			return Ready{}, err
		}
		r.rn.Advance(rd)
		for _, to := range snapTo {
			// Sent is as good as delivered: a lost snapshot makes the
			// leader probe, fail and send it again, rather than wait.
			r.rn.ReportSnapshot(to, raft.SnapshotFinish)
		}
	}
	out := Ready{Messages: r.out, Applied: r.applied}
	r.out, r.applied = nil, nil
	return out, nil
}

// maxAppended bounds Replica.appended.
const maxAppended = 1 << 16

// observedAt is when the entry now at idx came into this replica's log (the
// last write at idx: an entry that replaced another there is stamped anew),
// or now: the start of its wait for a renewal in it (Timing.Wait). Any time
// after the renewal was proposed is sound, and the entry's arrival is: a
// replica that learns of a commit late (a new leader commits its
// predecessor's last entries at its election) need not wait from then.
func (r *Replica) observedAt(idx uint64) time.Time {
	at, ok := r.appended[idx]
	delete(r.appended, idx)
	if !ok || at.After(r.now) {
		return r.now
	}
	return at
}

func (r *Replica) apply(e *pb.Entry) {
	idx := e.GetIndex()
	if idx <= r.state.Index() {
		delete(r.appended, idx)
		return
	}
	at := r.observedAt(idx)
	if e.GetType() != pb.EntryNormal || len(e.GetData()) == 0 {
		// Leaders' empty entries; configuration changes are never
		// proposed here, and one found in the log is not applied.
		r.state.index = idx
		return
	}
	c, err := DecodeCommand(e.GetData())
	if err == nil {
		err = r.state.Apply(idx, c)
	} else {
		r.state.index = idx
	}
	r.applied = append(r.applied, Applied{Index: idx, Cmd: c, Err: err})
	if err != nil {
		return
	}
	switch c.Op {
	case OpAssign, OpRelease:
		if o, ok := r.lastRenew[c.App]; ok {
			r.prev[c.App] = o
		}
		if a := r.state.apps[c.App]; c.Op == OpRelease && a.CleanGen == a.Gen {
			// A clean release: nothing of an earlier generation runs
			// (Release), no wait.
			delete(r.prev, c.App)
		}
		delete(r.releases, c.App) // applied, or the generation moved on
		d := r.cfg.Timing.Lease
		if o, ok := r.lastRenew[c.App]; ok && o.Lease > d {
			d = o.Lease
		}
		r.seen[c.App] = Observed{At: at, Lease: d}
		delete(r.leases, c.App)
		delete(r.lastSent, c.App) // a new holder renews at its next tick
	case OpRenew:
		o := Observed{At: at, Lease: c.Lease}
		r.lastRenew[c.App], r.seen[c.App] = o, o
		if c.Node == r.self && c.Inc == r.cfg.Incarnation {
			if p, ok := r.pending[c.Seq]; ok && p.app == c.App && p.gen == c.Gen {
				until := p.sent.Add(c.Lease)
				if l := r.leases[c.App]; l.Gen != c.Gen || until.After(l.Until) {
					r.leases[c.App] = Lease{Gen: c.Gen, Until: until}
				}
			}
		}
	case OpRemove:
		delete(r.leases, c.App)
	}
}

func (r *Replica) maybeSnapshot() error {
	idx := r.state.Index()
	if idx < r.snapAt+r.cfg.SnapshotEvery {
		return nil
	}
	data, err := r.state.Marshal()
	if err != nil {
		return fmt.Errorf("appreg: snapshot: %w", err)
	}
	snap, err := r.ms.CreateSnapshot(idx, r.cs, data)
	if err != nil {
		return fmt.Errorf("appreg: snapshot: %w", err)
	}
	if err := r.cfg.Store.Compact(snap); err != nil {
		return fmt.Errorf("appreg: compact store: %w", err)
	}
	if err := r.ms.Compact(idx); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("appreg: compact: %w", err)
	}
	r.snapAt = idx
	return nil
}

// raftLogger hands raft's log lines to slog, rate-limited: peers can make
// raft log (rejected appends, votes).
type raftLogger struct{ l *slog.Logger }

func newRaftLogger(l *slog.Logger) raft.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return raftLogger{ratelog.Wrap(l, ratelog.Config{})}
}

func (g raftLogger) log(lvl slog.Level, s string) {
	g.l.Log(context.Background(), lvl, "raft", "detail", s)
}

func (g raftLogger) Debug(v ...any)              {}
func (g raftLogger) Debugf(string, ...any)       {}
func (g raftLogger) Info(v ...any)               { g.log(slog.LevelDebug, fmt.Sprint(v...)) }
func (g raftLogger) Infof(f string, v ...any)    { g.log(slog.LevelDebug, fmt.Sprintf(f, v...)) }
func (g raftLogger) Warning(v ...any)            { g.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (g raftLogger) Warningf(f string, v ...any) { g.log(slog.LevelWarn, fmt.Sprintf(f, v...)) }
func (g raftLogger) Error(v ...any)              { g.log(slog.LevelError, fmt.Sprint(v...)) }
func (g raftLogger) Errorf(f string, v ...any)   { g.log(slog.LevelError, fmt.Sprintf(f, v...)) }
func (g raftLogger) Fatal(v ...any)              { panic(fmt.Sprint(v...)) }
func (g raftLogger) Fatalf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
func (g raftLogger) Panic(v ...any)              { panic(fmt.Sprint(v...)) }
func (g raftLogger) Panicf(f string, v ...any)   { panic(fmt.Sprintf(f, v...)) }
