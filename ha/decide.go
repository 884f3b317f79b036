// Package ha is tusker's decision core and the loop around it: Decide is a pure function from an
// observed View of the cluster to a Plan of actions; Node observes, decides, acts and publishes.
package ha

import (
	"fmt"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

// DataDir is what the local data directory holds.
type DataDir int

const (
	DataDirEmpty   DataDir = iota // missing or empty: bootstrap or clone
	DataDirValid                  // a PostgreSQL data directory
	DataDirInvalid                // something else: never overwritten automatically
)

// Local is the observed state of the local PostgreSQL.
type Local struct {
	DataDir DataDir
	// DataDirError says why an invalid data directory could not be read ("" when it could).
	DataDirError string
	SysID        string // from pg_controldata; "" when unknown
	Running      bool   // the postmaster is alive
	Ready        bool   // it answered a query this cycle
	Primary      bool   // running and not in recovery
	Timeline     int
	// WALEnd is how far this member's WAL goes, the position races and lag checks compare: the
	// flush position on a primary, the furthest of received and replayed on a replica (what
	// Patroni's xlog location means for each role).
	WALEnd int64
	// WasPrimary: pg_controldata says the stopped cluster last ran as a primary ("in production"
	// or "shut down"), as opposed to a standby, and no standby.signal says it is to run as one.
	WasPrimary bool
	// Upstream is the member this replica is configured to stream from ("" for none).
	Upstream string
	// Diverged is the result of the rewind check against the current leader, made while stopped:
	// nil when not checked.
	Diverged *bool
	// CanRewind: pg_rewind is usable on this data directory (checksums or wal_log_hints).
	CanRewind bool
	// RewindFailed: the last pg_rewind against the current leader failed.
	RewindFailed bool
	// DownSince: when this leader's postgres was first seen not running (zero while it runs).
	DownSince time.Time
	// WALChangedAt: when the local WAL position last moved (primary_race_backoff).
	WALChangedAt time.Time
	// WatchdogUsable: the watchdog device can be activated (always true unless mode is required).
	WatchdogUsable bool
	// HandedOver: this member stopped as the old primary of a switchover and has not started
	// again since.
	HandedOver bool
	// StalledSince: a running replica whose WAL receiver is not streaming, since when (zero while
	// it streams, and restarted whenever it is pointed at another upstream).
	StalledSince time.Time

	// Synchronous replication, on a running primary: the synchronous_standby_names in effect,
	// whether tusker sets it (rather than the user's configuration), the WAL position at which it
	// was known to be in effect everywhere (0 when unknown), and the walsenders.
	SyncGUC     postgres.SyncNames
	SyncManaged bool
	SyncConfirm int64
	Replicas    []ReplicaConn
}

// Peer is what a member reported on GET /patroni while this node raced for leadership.
type Peer struct {
	Name       string
	Reachable  bool
	Primary    bool  // reports role primary while running
	WALEnd     int64 // as Local.WALEnd, from its /patroni
	Timeline   int
	NoFailover bool
	Priority   int
	// WatchdogFailed: the member's watchdog is required and unusable.
	WatchdogFailed bool
}

// Settings are the parts of the configuration that rules depend on.
type Settings struct {
	TTL, LoopWait, RetryTimeout time.Duration
	MaximumLagOnFailover        int64
	CheckTimeline               bool
	UsePgRewind                 bool
	RemoveOnRewindFailure       bool
	RemoveOnDivergedTimelines   bool
	NoFailover                  bool
	Priority                    int
	// ReplicateFrom is this member's replicatefrom tag: the member it cascades from.
	ReplicateFrom       string
	Pause               bool
	PrimaryStartTimeout time.Duration
	PrimaryRaceBackoff  time.Duration
	FailsafeMode        bool
	WatchdogRequired    bool
	// Synchronous replication: SyncMode "off", "on" or "quorum".
	SyncMode         string
	SyncStrict       bool
	SyncNodeCount    int
	MaxLagOnSyncnode int64
	// CloneWithoutLeader: one of create_replica_methods works without a running leader
	// (no_leader: it restores from a backup repository).
	CloneWithoutLeader bool
	// StandbyCluster: this cluster follows another (standby_cluster). Its leader is a standby
	// leader replicating from RemoteUpstream, and nobody is promoted.
	StandbyCluster bool
}

// RemoteUpstream names the remote primary of a standby cluster as an Action's Upstream (no
// member name holds a "/").
const RemoteUpstream = "/remote"

// View is everything Decide may look at: one immutable observation.
type View struct {
	Now      time.Time
	Me       string
	Settings Settings

	// DCSOK: Cluster was read in this cycle. When false, Cluster is the last good snapshot (or nil).
	DCSOK   bool
	Cluster *dcs.Cluster

	// LeaseHeld: this node holds the leader key as of its last successful acquire or renewal, valid
	// until LeaseExpiry (measured from the start of that request, on the monotonic clock).
	LeaseHeld   bool
	LeaseExpiry time.Time

	Local Local
	// Job is the long action in progress (NoJob for none).
	Job Job

	// RaceBackoffUntil: this member does not race for the lock before then (after a failed
	// pre_promote, or after it released the lock because its postgres crashed).
	RaceBackoffUntil time.Time

	// RenewFailed (leader): the last renewal of the lease failed because the store did not
	// answer it, not because another member holds the key. A store can answer reads and still
	// not take writes (a network cut that lets some requests through, a store that was frozen).
	RenewFailed bool

	// FailsafeConfirmed (leader, the store unreachable or not renewing): every member of the
	// failsafe key accepted this cycle's POST /failsafe, in a round that started at
	// FailsafeConfirmedAt. FailsafeLeader (replica): the member that POSTed /failsafe to us
	// within the last ttl ("" for none).
	FailsafeConfirmed   bool
	FailsafeConfirmedAt time.Time
	FailsafeLeader      string

	// Peers were probed this cycle (only when racing for leadership).
	PeersProbed bool
	Peers       []Peer
}

// Kind is one kind of action.
type Kind int

const (
	Fence             Kind = iota + 1 // stop postgres immediately (SIGQUIT), without waiting
	RenewLeader                       // refresh the lease and confirm the leader key
	AcquireLeader                     // take the leader key
	ReleaseLeader                     // delete the leader key
	Bootstrap                         // race for initialize, initdb, start as primary, take the lock
	Clone                             // pg_basebackup from Upstream, then start as a replica
	StartPrimary                      // start the stopped primary again
	StartReplica                      // start as a replica of Upstream ("" for none yet)
	Follow                            // point the running replica at Upstream
	Promote                           // promote the running replica
	Demote                            // stop the running primary (immediate), to rejoin as a replica
	Rewind                            // pg_rewind from Upstream, then start as a replica
	Reclone                           // remove the data directory, clone from Upstream
	ClaimInitialize                   // write our system identifier into a missing initialize key
	RefuseForeignData                 // the data directory belongs to another cluster: stop for good
	ProbeRewind                       // check whether the stopped data directory diverged from Upstream
	Handover                          // switchover: checkpoint, stop cleanly, release the lock once Upstream has all WAL
	ClearFailover                     // delete the failover key
	CancelAction                      // cancel the long action in progress
	WriteSyncKey                      // write the sync key (CAS on the observed version)
	DeleteSyncKey                     // delete the sync key
	SetSyncGUC                        // set synchronous_standby_names and wait until it is in effect
	RestoreSyncGUC                    // give synchronous_standby_names back to the configuration
	StopReplica                       // stop the running replica (fast), so that the rejoin rules check it
	ExtendLease                       // failsafe: count the lease from the confirmation round's start
	DemoteCluster                     // standby cluster: stop the primary cleanly, start it as the standby leader
)

var kindNames = map[Kind]string{
	Fence: "fence", RenewLeader: "renew leader", AcquireLeader: "acquire leader", ReleaseLeader: "release leader",
	Bootstrap: "bootstrap", Clone: "clone", StartPrimary: "start primary", StartReplica: "start replica",
	Follow: "follow", Promote: "promote", Demote: "demote", Rewind: "rewind", Reclone: "reclone",
	ClaimInitialize: "claim initialize", RefuseForeignData: "refuse foreign data", ProbeRewind: "probe rewind",
	Handover: "handover", ClearFailover: "clear failover", CancelAction: "cancel action",
	WriteSyncKey: "write sync key", DeleteSyncKey: "delete sync key", SetSyncGUC: "set synchronous_standby_names",
	RestoreSyncGUC: "restore synchronous_standby_names", StopReplica: "stop replica",
	ExtendLease: "extend lease", DemoteCluster: "demote cluster",
}

func (k Kind) String() string { return kindNames[k] }

// Action is one step of a plan.
type Action struct {
	Kind     Kind
	Upstream string // member name, for Clone, StartReplica, Follow, Rewind, Reclone, ProbeRewind, Handover
	// FastForward (Follow): stream from another replica, without a slot, to catch up before
	// promoting.
	FastForward bool
	// SyncKey and SyncVersion (WriteSyncKey): the value and the version it replaces (0: create).
	SyncKey     dcs.Sync
	SyncVersion int64
	// GUC (SetSyncGUC): the synchronous_standby_names to set.
	GUC postgres.SyncNames
}

// Plan is Decide's answer: actions in order and one line saying why. The actions run in order
// and the first that fails ends the plan (losing the race for the lock counts as failing).
type Plan struct {
	Actions []Action
	Reason  string
	// WakeAt asks for the next cycle no later than this (a scheduled switchover); zero for none.
	WakeAt time.Time
}

// Has reports whether the plan contains an action of kind k.
func (p Plan) Has(k Kind) bool {
	for _, a := range p.Actions {
		if a.Kind == k {
			return true
		}
	}
	return false
}

func plan(reason string, actions ...Action) Plan { return Plan{Actions: actions, Reason: reason} }

func act(k Kind) Action                    { return Action{Kind: k} }
func actOn(k Kind, upstream string) Action { return Action{Kind: k, Upstream: upstream} }

// FenceMargin is how long before the lease deadline a leader that could not renew stops postgres.
// An immediate shutdown (SIGQUIT) ends every backend within milliseconds; the margin covers that
// plus scheduling delays. See docs/architecture.md, "Lease timing".
func FenceMargin(s Settings) time.Duration {
	m := s.TTL / 4
	if m > time.Second {
		m = time.Second
	}
	return m
}

// HoldsLock says whether a member may call itself the leader (GET /primary, /leader): its lease
// is valid by its own clock and the key names it, or names nobody: a key that vanished while the
// lease still counts (Kubernetes members judge expiry by their own clocks; failsafe mode rode out
// an outage) is being taken back in this very cycle, and nobody else can hold it meanwhile. A
// health check must not see the primary blink out for that one cycle.
func HoldsLock(leaseHeld bool, leader, me string) bool {
	return leaseHeld && (leader == me || leader == "")
}

// FenceGrace is how long a fence planned from v and carried out at now may let PostgreSQL's fast
// shutdown run before it is made immediate: until half the margin before the lease deadline, so
// that writes have surely ended when the lease can lapse; none without a lease or when another
// member holds the key (it may be primary already). The fast shutdown ends every session at once
// but lets the WAL senders pass on what was flushed, so the member promoted next has every
// commit and the fenced one has nothing more.
func FenceGrace(v View, now time.Time) time.Duration {
	if !v.LeaseHeld || v.Cluster != nil && v.Cluster.LeaderName() != "" && v.Cluster.LeaderName() != v.Me {
		return 0
	}
	return max(v.LeaseExpiry.Add(-FenceMargin(v.Settings)/2).Sub(now), 0)
}

// Decide is the whole of tusker's HA policy: a pure function of the view (no I/O, no clock, no
// randomness). Rules are checked in order; the first that applies returns.
func Decide(v View) Plan {
	extend := FailsafeExtendsLease(v)
	if extend {
		v.LeaseExpiry = later(v.LeaseExpiry, v.FailsafeConfirmedAt.Add(v.Settings.TTL))
	}
	p := decide(v)
	if extend {
		// Rule failsafe-extend: every member confirmed this primary and will not race for a ttl
		// from the round's start, so the lease counts from then, before anything else runs.
		p.Actions = append([]Action{act(ExtendLease)}, p.Actions...)
	}
	if !v.DCSOK {
		// A store that refused the connection outright is asked again soon: its return must be
		// seen within a fraction of loop_wait (a hanging call already waits retry_timeout).
		if at := v.Now.Add(OfflineRetry); p.WakeAt.IsZero() || at.Before(p.WakeAt) {
			p.WakeAt = at
		}
	}
	return p
}

// FailsafeConfirmationNeeded is when a leader asks every member to confirm it (POST /failsafe)
// instead of relying on the lease: failsafe mode, a running primary holding the lease, and a store
// that cannot renew it, whether reads fail too or not (a read that gets through while every
// renewal times out must not cost the primary its writes).
func FailsafeConfirmationNeeded(v View) bool {
	return v.Settings.FailsafeMode && v.LeaseHeld && v.Local.Primary && (!v.DCSOK || v.RenewFailed)
}

// FailsafeExtendsLease: the confirmation round this cycle succeeded, so the lease is extended
// (Decide's rule failsafe-extend; the loop also asks after a renewal that failed in the cycle).
func FailsafeExtendsLease(v View) bool {
	return FailsafeConfirmationNeeded(v) && v.FailsafeConfirmed && !v.FailsafeConfirmedAt.IsZero()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// decideLease applies the rules about the lease itself, which come before everything else:
// the deadline, an unreachable DCS, and a leader key that is no longer ours.
func decideLease(v View, leader string) (Plan, bool) {
	s := v.Settings
	// Rule lease-deadline: a leader whose lease is about to run out stops writes first, whatever
	// else is going on. The others may take the lock at LeaseExpiry. Two exceptions, both because
	// nobody else may be promoted automatically at that point: maintenance mode (replicas never
	// race while paused), and failsafe mode when every member confirmed this primary this cycle
	// (they refuse to race for ttl after the confirmation).
	if v.LeaseHeld && !v.Now.Before(v.LeaseExpiry.Add(-FenceMargin(s))) {
		switch {
		case s.Pause:
			if v.DCSOK {
				return plan("pause: leader lease ran out; renewing it, postgres left alone", act(RenewLeader)), true
			}
			return plan("pause: DCS unreachable and the leader lease ran out; postgres left alone"), true
		case FailsafeConfirmationNeeded(v) && v.FailsafeConfirmed:
			return plan("failsafe mode: DCS unreachable, every member confirmed this primary: staying primary"), true
		}
		acts := []Action{act(Fence)}
		if v.DCSOK {
			acts = append(acts, act(ReleaseLeader))
		}
		return plan(fmt.Sprintf("leader lease could not be renewed before %s: stopping postgres",
			v.LeaseExpiry.Format(time.RFC3339Nano)), acts...), true
	}

	// Rule dcs-unreachable: without a fresh snapshot nothing is promoted, demoted to follow
	// somebody, or handed over; only the lease is kept, and postgres is kept running read-only.
	if !v.DCSOK {
		if v.LeaseHeld {
			return plan(fmt.Sprintf("DCS unreachable: still leader, lease valid for %s",
				v.LeaseExpiry.Sub(v.Now).Round(time.Millisecond)), act(RenewLeader)), true
		}
		return decideOffline(v), true
	}

	// Rule lost-leader-key: we thought we led, but the key says otherwise. A key that merely
	// vanished (its lease ran out while failsafe mode kept this primary up, or it was deleted by
	// hand) is taken back atomically: nobody else can hold it, and if somebody takes it first the
	// acquisition fails and the next cycle fences.
	if v.LeaseHeld && leader != v.Me {
		if v.Local.Running && v.Local.Primary && !s.Pause {
			if leader == "" {
				return plan("leader key vanished while this primary held the lease: taking it back", act(AcquireLeader)), true
			}
			return plan(fmt.Sprintf("leader key lost to %q: stopping postgres", leader), act(Fence)), true
		}
	}
	return Plan{}, false
}

func decide(v View) Plan {
	c := v.Cluster
	leader := c.LeaderName()
	iAmLeader := leader == v.Me && v.LeaseHeld
	s := v.Settings
	if p, ok := decideLease(v, leader); ok {
		return p
	}

	// Rule action-in-progress: while a long action runs, the leader only renews.
	if v.Job != NoJob {
		if iAmLeader {
			// Rule primary-start-timeout: a primary that does not come back in time hands over.
			if v.Job == JobStart && startTimedOut(v) {
				return plan(fmt.Sprintf("postgres not up %s after it went down (primary_start_timeout %s): releasing the lock for a failover",
					v.Now.Sub(v.Local.DownSince).Round(time.Second), s.PrimaryStartTimeout),
					act(CancelAction), act(Fence), act(ReleaseLeader))
			}
			return plan("leader, "+v.Job.String()+" in progress: renewing the lease", act(RenewLeader))
		}
		if v.Job == JobPromote && leader != v.Me {
			return plan("lost the leader key while promoting: stopping postgres", act(Fence))
		}
		return plan(v.Job.String() + " in progress")
	}

	l := v.Local
	switch l.DataDir {
	case DataDirInvalid:
		if l.DataDirError != "" {
			return plan(l.DataDirError + " (is it owned by the user tusker runs as?): not touching it")
		}
		return plan("data directory is not empty and is not a PostgreSQL data directory: not touching it")
	case DataDirEmpty:
		if s.Pause {
			return plan("pause: data directory is empty; not bootstrapping or cloning (POST /reinitialize does)")
		}
		return decideEmpty(v)
	}

	// Rule foreign-data: a data directory from another cluster is never used or overwritten.
	if c.Initialize != nil && *c.Initialize != "" && l.SysID != "" && l.SysID != *c.Initialize {
		acts := []Action{}
		if iAmLeader {
			acts = append(acts, act(ReleaseLeader))
		}
		acts = append(acts, act(RefuseForeignData))
		return plan(fmt.Sprintf("data directory has system identifier %s but the cluster's is %s: it belongs to another cluster",
			l.SysID, *c.Initialize), acts...)
	}

	if !l.Running {
		return decideStopped(v, leader, iAmLeader)
	}
	return decideRunning(v, leader, iAmLeader)
}

// OfflineRetry is the longest wait between two cycles while the DCS is unreachable.
const OfflineRetry = 200 * time.Millisecond

// decideOffline is the rule dcs-unreachable for a member without a lease. Rule offline-demote: a
// primary without a lease (tusker started during the outage, or its fence was undone by hand)
// must not take writes: it is fenced, as the lease-deadline rule does. Rule offline-read-only: a
// stopped postgres (the fence stopped it, or it crashed) is started again as a standby with no
// upstream. Read-only, it cannot diverge from anybody, so it is as safe as a stopped one, and
// when the store is back it is already running: a leader whose key survived promotes it in one
// cycle, and a member that lost the race streams from the new leader without a restart or a
// rewind check.
func decideOffline(v View) Plan {
	l := v.Local
	switch {
	case v.Settings.Pause:
		return plan("pause: DCS unreachable; keeping postgres as it is")
	case v.Job != NoJob:
		return plan("DCS unreachable: " + v.Job.String() + " in progress")
	case l.DataDir != DataDirValid:
		return plan("DCS unreachable: keeping postgres as it is")
	case l.Running && l.Primary:
		return plan("DCS unreachable and this primary holds no leader lease: fencing it", act(Fence))
	case l.Running:
		return plan("DCS unreachable: keeping postgres as it is")
	case v.Now.Before(v.RaceBackoffUntil):
		return plan("DCS unreachable: this member handed its lock over; keeping postgres stopped")
	}
	return plan("DCS unreachable: starting postgres read-only, with no upstream, until the store is back", actOn(StartReplica, ""))
}

// startTimedOut: the leader's postgres has been down for primary_start_timeout and another member
// could take over.
func startTimedOut(v View) bool {
	l := v.Local
	if l.DownSince.IsZero() || v.Settings.Pause {
		return false
	}
	return v.Now.Sub(l.DownSince) >= v.Settings.PrimaryStartTimeout && failoverPossible(v)
}

// failoverPossible: some other member, as its member key says, could be promoted: a running
// replica allowed to fail over and within maximum_lag_on_failover of the last leader position.
func failoverPossible(v View) bool {
	for _, m := range v.Cluster.Members {
		if m.Name == v.Me || m.Data.State != "running" || m.Data.Role == "primary" || !MemberEligible(m) || !syncVoter(v, m.Name) {
			continue
		}
		pos := int64(0)
		for _, p := range []*int64{m.Data.XLogLocation, m.Data.ReceiveLSN, m.Data.ReplayLSN} {
			if p != nil && *p > pos {
				pos = *p
			}
		}
		if opt := v.Cluster.Status.Optime; opt > 0 && opt-pos > v.Settings.MaximumLagOnFailover {
			continue
		}
		return true
	}
	return false
}

// MemberEligible reads the nofailover and failover_priority tags of a member key (Patroni's
// rules, package patroni): false when the member may never be promoted.
func MemberEligible(m dcs.Member) bool { return !patroni.NoFailover(m.Data.Tags) }

func decideEmpty(v View) Plan {
	c := v.Cluster
	leader := c.LeaderName()
	switch {
	case leader != "" && leader != v.Me:
		return plan(fmt.Sprintf("no data: cloning from %s", cloneSource(v, leader)), actOn(Clone, cloneSource(v, leader)))
	case c.Initialize == nil && leader == "":
		if v.Settings.NoFailover {
			return plan("no data and no cluster, but tagged nofailover: waiting for another member to bootstrap")
		}
		if v.Settings.WatchdogRequired && !v.Local.WatchdogUsable {
			return plan("no data and no cluster, but the required watchdog is not usable: waiting for another member to bootstrap")
		}
		return plan("no data and no cluster: racing to bootstrap a new one", act(Bootstrap))
	case c.Initialize != nil && *c.Initialize != "" && v.Settings.CloneWithoutLeader:
		// Patroni's "bootstrap (without leader)": the cluster exists but nobody leads it; a
		// method that restores from a backup needs no leader. The new replica may then win the
		// race like any other.
		return plan("no data and no leader: creating a replica with a method that needs no leader", actOn(Clone, ""))
	default:
		return plan("no data: waiting for the leader to bootstrap the cluster")
	}
}

// cloneSource prefers a running replica tagged clonefrom over the leader.
func cloneSource(v View, leader string) string {
	for _, m := range v.Cluster.Members {
		if m.Name == v.Me || m.Name == leader {
			continue
		}
		if patroni.CloneFrom(m.Data.Tags) && m.Data.State == "running" && m.Data.Role == "replica" {
			return m.Name
		}
	}
	return leader
}

func decideStopped(v View, leader string, iAmLeader bool) Plan {
	l := v.Local
	c := v.Cluster
	s := v.Settings
	if c.Initialize == nil && leader == "" {
		return plan("data directory present but no initialize key: claiming the cluster with it", act(ClaimInitialize))
	}
	if s.Pause && !(l.HandedOver && leader != "" && leader != v.Me) {
		// Rule pause-stopped: nothing is started while paused (except a primary that handed over
		// in a manual switchover: it rejoins the new leader); a leader without a running postgres
		// gives the lock up so that a manual failover can name somebody else.
		if iAmLeader {
			return plan("pause: postgres is stopped; releasing the leader key, not starting it", act(ReleaseLeader))
		}
		return plan("pause: postgres is stopped; not starting it")
	}
	switch {
	case leader == v.Me:
		if !v.LeaseHeld {
			// Our previous incarnation's key: take it back through the lease before acting.
			return plan("leader key carries my name from before a restart: taking it back", act(AcquireLeader))
		}
		if s.StandbyCluster {
			return plan("standby leader with postgres stopped: starting it as a replica of the remote primary",
				act(RenewLeader), actOn(StartReplica, RemoteUpstream))
		}
		if !l.WasPrimary {
			return plan("leader, but the stopped data directory is a standby's: releasing the lock", act(ReleaseLeader))
		}
		// Rule primary-start-timeout: with primary_start_timeout 0 a crashed primary hands over
		// at once; otherwise it gets that long to come back.
		if failoverPossible(v) && (s.PrimaryStartTimeout == 0 || startTimedOut(v)) {
			return plan(fmt.Sprintf("postgres is down and primary_start_timeout is %s: releasing the lock for a failover", s.PrimaryStartTimeout),
				act(ReleaseLeader))
		}
		return plan("leader with postgres stopped: starting it as primary",
			append(append([]Action{act(RenewLeader)}, syncPrepare(v)...), act(StartPrimary))...)
	case leader != "":
		// Rule rejoin: never stream from a leader on a diverged timeline.
		if leaderCheckpointPending(c, leader) {
			return plan(fmt.Sprintf("waiting for %s to checkpoint after its promotion before rejoining", leader))
		}
		if l.Diverged == nil {
			return plan(fmt.Sprintf("checking whether the data directory diverged from %s", leader), actOn(ProbeRewind, leader))
		}
		if !*l.Diverged {
			up := UpstreamOf(v, leader)
			return plan(fmt.Sprintf("starting as a replica of %s", up), actOn(StartReplica, up))
		}
		switch {
		case l.RewindFailed && s.RemoveOnRewindFailure:
			return plan(fmt.Sprintf("pg_rewind failed: removing the data directory and cloning from %s", leader), actOn(Reclone, leader))
		case l.RewindFailed:
			return plan("pg_rewind failed and remove_data_directory_on_rewind_failure is off: not starting a diverged replica")
		case s.UsePgRewind && l.CanRewind:
			return plan(fmt.Sprintf("timeline diverged from %s: running pg_rewind", leader), actOn(Rewind, leader))
		case s.RemoveOnDivergedTimelines:
			return plan(fmt.Sprintf("timeline diverged from %s and pg_rewind is not possible: cloning afresh", leader), actOn(Reclone, leader))
		default:
			return plan(fmt.Sprintf("timeline diverged from %s; pg_rewind is off or impossible and remove_data_directory_on_diverged_timelines is off: not starting", leader))
		}
	default:
		// Rule crash-handover: after giving up the lock because postgres crashed, stay down until
		// somebody else leads (or the backoff ends): restarted, this member would still have the
		// most WAL and make the others wait for it.
		if v.Now.Before(v.RaceBackoffUntil) {
			return plan("no leader yet after this member released the lock: waiting before starting postgres")
		}
		// No leader: start read-only, so that this member can be compared and race if it is the best.
		return plan("no leader: starting postgres as a replica to join the race", actOn(StartReplica, ""))
	}
}

// stalledOnOldTimeline is the rejoin rule for a replica that is already running: one that
// received WAL past the point where the new leader's timeline forked off (an asynchronous replica
// can be ahead of the synchronous standby that was promoted) can never stream from it, and
// postgres only logs that, forever. The check is done where it is exact, on the stopped data
// directory: a replica that has not streamed for ttl while the leader is on a newer timeline than
// its own is stopped, and decideStopped checks it, rewinds it if it diverged, and starts it again.
// A replica that did not diverge streams within a second of being pointed at the new leader.
func stalledOnOldTimeline(v View, leader string) (Plan, bool) {
	l, s := v.Local, v.Settings
	m := v.Cluster.Member(leader)
	if s.Pause || l.StalledSince.IsZero() || m == nil || m.Data.Timeline <= l.Timeline ||
		v.Now.Sub(l.StalledSince) < s.TTL {
		return Plan{}, false
	}
	return plan(fmt.Sprintf("not streaming from %s for %s, and it is on timeline %d while this replica is on %d: stopping postgres to check whether it diverged",
		leader, v.Now.Sub(l.StalledSince).Round(time.Second), m.Data.Timeline, l.Timeline), act(StopReplica)), true
}

func leaderCheckpointPending(c *dcs.Cluster, leader string) bool {
	m := c.Member(leader)
	return m != nil && m.Data.CheckpointAfterPromote != nil && !*m.Data.CheckpointAfterPromote
}

func decideRunning(v View, leader string, iAmLeader bool) Plan {
	l := v.Local
	s := v.Settings
	f := v.Cluster.Failover
	switch {
	case iAmLeader && s.StandbyCluster:
		return decideStandbyLeader(v)
	case iAmLeader:
		if !l.Primary {
			if s.Pause && !(f != nil && f.Member == v.Me) {
				return plan("pause: holding the leader key but not running as primary: releasing it", act(ReleaseLeader))
			}
			return plan("holding the leader key: promoting", append(append([]Action{act(RenewLeader)}, syncPrepare(v)...), act(Promote))...)
		}
		if f != nil {
			return leaderFailoverRequest(v, f)
		}
		return leaderSync(v, plan("I am the leader with the lock", act(RenewLeader)))
	case leader == v.Me:
		// The key carries our name but our lease is not confirmed (a tusker restart).
		return plan("leader key carries my name from before a restart: taking it back", act(AcquireLeader))
	case leader != "":
		if l.Primary {
			if s.Pause {
				return plan(fmt.Sprintf("pause: %s holds the leader key but this member runs as primary too; not demoting", leader))
			}
			return plan(fmt.Sprintf("%s holds the leader key: demoting", leader), act(Demote))
		}
		if up := UpstreamOf(v, leader); l.Upstream != up {
			if up != leader {
				return plan(fmt.Sprintf("replicatefrom: streaming from %s", up), actOn(Follow, up))
			}
			return plan(fmt.Sprintf("following the new leader %s", leader), actOn(Follow, leader))
		}
		if p, ok := stalledOnOldTimeline(v, leader); ok {
			return p
		}
		if l.Upstream != leader {
			return plan(fmt.Sprintf("following %s (replicatefrom), leader %s", l.Upstream, leader))
		}
		return plan(fmt.Sprintf("following leader %s", leader))
	}
	// No leader.
	if l.Primary {
		// Rule stale-primary: a primary on an older timeline than the cluster's history never
		// takes the lock back.
		if tl := historyTimeline(v.Cluster); tl > 0 && l.Timeline <= tl && !s.Pause {
			return plan(fmt.Sprintf("running as primary on timeline %d but the cluster moved to %d: demoting", l.Timeline, tl+1), act(Demote))
		}
		return plan("no leader and I am a running primary: taking the lock", act(AcquireLeader))
	}
	if f != nil && (f.ScheduledAt == nil || !f.ScheduledAt.After(v.Now)) {
		if p, ok := manualFailoverNoLeader(v, f); ok {
			return p
		}
	}
	if s.Pause {
		return plan("pause: no leader, but replicas are not promoted automatically")
	}
	if v.FailsafeLeader != "" {
		return plan(fmt.Sprintf("no leader key, but %s confirmed it is primary through failsafe mode: not racing", v.FailsafeLeader))
	}
	if ok, why := healthiest(v); !ok {
		if preferred(v) {
			if p, ok := fastForward(v); ok {
				return p
			}
		}
		return plan("no leader; not racing: " + why)
	}
	return promotePlan(v, "no leader and I am the healthiest member: taking the lock and promoting")
}

// anyPeerAhead: some reachable member reports more WAL than wal.
func anyPeerAhead(v View, wal int64) bool {
	for _, p := range v.Peers {
		if p.Reachable && p.WALEnd > wal {
			return true
		}
	}
	return false
}

// preferred: this member has the strictly highest failover_priority among the eligible reachable
// members, is within maximum_lag_on_failover, and nothing else disqualifies it but WAL.
func preferred(v View) bool {
	s, l := v.Settings, v.Local
	if s.NoFailover || !l.Ready || !v.PeersProbed || v.Now.Before(v.RaceBackoffUntil) ||
		(s.WatchdogRequired && !l.WatchdogUsable) || !syncVoter(v, v.Me) {
		return false
	}
	if opt := v.Cluster.Status.Optime; opt > 0 && opt-l.WALEnd > s.MaximumLagOnFailover {
		return false
	}
	for _, p := range v.Peers {
		if p.Name == v.Me || !p.Reachable {
			continue
		}
		if p.Primary || (!p.NoFailover && !p.WatchdogFailed && p.Priority >= s.Priority && syncVoter(v, p.Name)) {
			return false
		}
	}
	return true
}

// needPeers says whether observe must probe the other members (a REST call to each): only when it
// matters, that is when nobody holds the lock and this member might race, or when a switchover is
// due on the leader. The named candidate of a switchover takes over at once without them, unless
// it is short of the old primary's final position: then it needs them to fast-forward from a
// member that is ahead, or to join the normal race (without them it would wait forever, and so
// would the others, waiting for it).
func needPeers(v View, me string, now time.Time) bool {
	if !v.DCSOK || v.Job != NoJob {
		return false
	}
	leader := v.Cluster.LeaderName()
	f := v.Cluster.Failover
	due := f != nil && (f.ScheduledAt == nil || !f.ScheduledAt.After(now))
	candidateReady := due && f.Member == me && (f.Leader == "" || v.Cluster.Status.Optime == 0 ||
		v.Settings.StandbyCluster || v.Local.WALEnd >= v.Cluster.Status.Optime)
	racing := leader == "" && v.Local.Running && !v.Local.Primary && !v.Settings.NoFailover &&
		!candidateReady && (!v.Settings.Pause || due)
	// A standby leader hands over as a primary does (decideStandbyLeader), unless paused.
	handing := leader == me && v.LeaseHeld && due &&
		(v.Local.Primary || (v.Settings.StandbyCluster && v.Local.Running && !v.Settings.Pause))
	return racing || handing
}

// fastForward is pg_auto_failover's fast-forward: a preferred candidate that is behind streams
// from the most advanced reachable member (a replica, without a slot) until it has caught up;
// then the normal rules promote it.
func fastForward(v View) (Plan, bool) {
	var best Peer
	for _, p := range v.Peers {
		// A member whose key is missing (expired in a DCS outage) counts in the race, but cannot
		// be streamed from until its key says where it is.
		if p.Name != v.Me && p.Reachable && !p.Primary && p.WALEnd > best.WALEnd && v.Cluster.Member(p.Name) != nil {
			best = p
		}
	}
	if best.Name == "" || best.WALEnd <= v.Local.WALEnd {
		return Plan{}, false
	}
	if v.Local.Upstream == best.Name {
		return plan(fmt.Sprintf("fast-forward: catching up from %s before promoting (%d of %d)", best.Name, v.Local.WALEnd, best.WALEnd)), true
	}
	a := actOn(Follow, best.Name)
	a.FastForward = true
	return plan(fmt.Sprintf("fast-forward: %s is ahead (%d > %d); streaming from it before promoting", best.Name, best.WALEnd, v.Local.WALEnd), a), true
}

// promotePlan takes the lock and starts the promotion in the same cycle; a pending failover key
// is cleared once the lock is ours.
func promotePlan(v View, reason string) Plan {
	if v.Settings.StandbyCluster {
		// The race of a standby cluster: the winner becomes the standby leader.
		acts := []Action{act(AcquireLeader), actOn(Follow, RemoteUpstream)}
		if v.Cluster.Failover != nil {
			acts = append(acts, act(ClearFailover))
		}
		return plan(strings.Replace(reason, "and promoting", "as the standby leader", 1), acts...)
	}
	acts := append(append([]Action{act(AcquireLeader)}, syncPrepare(v)...), act(Promote))
	if v.Cluster.Failover != nil {
		acts = append(acts, act(ClearFailover))
	}
	return plan(reason, acts...)
}

// leaderFailoverRequest is the leader's side of a switchover or failover request (the failover
// key): wait for its time, check that the candidate can take over, then hand over.
func leaderFailoverRequest(v View, f *dcs.Failover) Plan {
	s := v.Settings
	if f.Leader != "" && f.Leader != v.Me {
		return plan(fmt.Sprintf("switchover request names %s as the leader, not me: removing it", f.Leader),
			act(RenewLeader), act(ClearFailover))
	}
	if f.ScheduledAt != nil {
		at := *f.ScheduledAt
		switch {
		case s.Pause:
			return plan("pause: a scheduled switchover waits until maintenance mode ends", act(RenewLeader))
		case at.After(v.Now):
			p := plan(fmt.Sprintf("switchover scheduled at %s", at.Format(time.RFC3339)), act(RenewLeader))
			p.WakeAt = at
			return p
		case v.Now.Sub(at) > max(s.LoopWait*3/2, 5*time.Second):
			// Late by more than one and a half loops (at least 5 s, for a tusker that was busy):
			// a stale request is dropped rather than acted on by surprise.
			return plan(fmt.Sprintf("switchover scheduled at %s is stale: removing it", at.Format(time.RFC3339)),
				act(RenewLeader), act(ClearFailover))
		}
	}
	if !v.PeersProbed {
		return plan("switchover requested: checking the candidates", act(RenewLeader))
	}
	target, why := handoverTarget(v, f)
	if target == "" {
		return plan("switchover not possible: "+why+": removing the request", act(RenewLeader), act(ClearFailover))
	}
	return plan(fmt.Sprintf("switchover to %s: stopping cleanly and handing the lock over", target),
		act(RenewLeader), actOn(Handover, target))
}

// handoverTarget picks the member the leader hands over to: the named candidate, or the best
// reachable eligible replica (most WAL, then failover_priority).
func handoverTarget(v View, f *dcs.Failover) (string, string) {
	best, why := "", "no other members"
	var bestPeer Peer
	for _, p := range v.Peers {
		if p.Name == v.Me || (f.Member != "" && p.Name != f.Member) {
			continue
		}
		switch {
		case !p.Reachable:
			why = p.Name + " is not reachable"
		case p.NoFailover:
			why = p.Name + " is not allowed to promote (nofailover)"
		case p.WatchdogFailed:
			why = p.Name + " is not watchdog capable"
		case p.Primary:
			why = p.Name + " runs as a primary"
		case v.Settings.SyncMode == "on" && !syncVoter(v, p.Name):
			// Only a synchronous standby is known to have every commit (Patroni refuses the
			// others in mode on; in quorum mode the handover itself ships all the WAL).
			why = p.Name + " is not a synchronous standby"
		case best == "" || p.WALEnd > bestPeer.WALEnd || (p.WALEnd == bestPeer.WALEnd && p.Priority > bestPeer.Priority):
			best, bestPeer = p.Name, p
		}
	}
	if f.Member != "" && best == "" && why == "no other members" {
		why = "candidate " + f.Member + " does not exist"
	}
	return best, why
}

// manualFailoverNoLeader is a replica's side of a failover key while nobody holds the lock: the
// named candidate takes it; the others wait for a healthy candidate, or race without the former
// leader. ok is false when the normal race applies.
func manualFailoverNoLeader(v View, f *dcs.Failover) (Plan, bool) {
	s, l := v.Settings, v.Local
	opt := v.Cluster.Status.Optime
	if f.Member == v.Me {
		switch {
		case s.NoFailover:
			return plan("named as the failover candidate, but tagged nofailover"), true
		case s.WatchdogRequired && !l.WatchdogUsable:
			return plan("named as the failover candidate, but the required watchdog is not usable"), true
		case f.Leader != "" && opt > 0 && l.WALEnd < opt && !s.StandbyCluster:
			// A switchover: the old primary stopped cleanly at opt. Promoting short of it would
			// lose committed transactions: catch up from a member that has more, or leave the
			// decision to the normal race.
			if p, ok := fastForward(v); ok {
				return p, true
			}
			return Plan{}, false
		case !l.Ready:
			return plan("named as the failover candidate: waiting for postgres to be ready"), true
		}
		return promotePlan(v, "manual failover/switchover to me: taking the lock and promoting"), true
	}
	if f.Leader == v.Me {
		return plan("former leader of a switchover: not racing"), true
	}
	if f.Member != "" {
		for _, p := range v.Peers {
			if p.Name != f.Member || !p.Reachable || p.NoFailover || p.WatchdogFailed {
				continue
			}
			// A candidate short of the old primary's final position fast-forwards from a member
			// that is ahead of it, if there is one.
			if f.Leader == "" || opt == 0 || s.StandbyCluster || p.WALEnd >= opt || l.WALEnd > p.WALEnd || anyPeerAhead(v, p.WALEnd) {
				return plan(fmt.Sprintf("waiting for the failover candidate %s to take over", f.Member)), true
			}
		}
		if !v.PeersProbed {
			return plan(fmt.Sprintf("failover to %s requested: checking it", f.Member)), true
		}
	}
	if s.Pause && f.Leader == "" {
		return plan("pause: the failover candidate cannot take over and replicas are not promoted automatically"), true
	}
	return Plan{}, false
}

// historyTimeline is the newest timeline the history key says was left behind (0 if none).
func historyTimeline(c *dcs.Cluster) int {
	tl := 0
	for _, h := range c.History {
		if h.Timeline > tl {
			tl = h.Timeline
		}
	}
	return tl
}

// healthiest is the leader-race rule: eligible by tags, within maximum_lag_on_failover of the last
// known leader position, on the newest timeline (check_timeline), no reachable member reporting a
// running primary, none eligible ahead in WAL, none at the same WAL with a higher priority.
func healthiest(v View) (bool, string) {
	s, l := v.Settings, v.Local
	if s.NoFailover {
		return false, "tagged nofailover"
	}
	if v.Now.Before(v.RaceBackoffUntil) {
		return false, fmt.Sprintf("backing off until %s", v.RaceBackoffUntil.Format(time.RFC3339))
	}
	if !l.Ready {
		return false, "postgres is not ready"
	}
	if s.WatchdogRequired && !l.WatchdogUsable {
		return false, "watchdog is required but not usable"
	}
	if s.FailsafeMode && v.Cluster.Failsafe != nil {
		if _, ok := v.Cluster.Failsafe[v.Me]; !ok {
			return false, "not in the failsafe key"
		}
	}
	if opt := v.Cluster.Status.Optime; opt > 0 && opt-l.WALEnd > s.MaximumLagOnFailover {
		return false, fmt.Sprintf("lagging %d bytes behind the last leader position, more than maximum_lag_on_failover %d",
			opt-l.WALEnd, s.MaximumLagOnFailover)
	}
	if s.CheckTimeline {
		if tl := historyTimeline(v.Cluster); tl > 0 && l.Timeline <= tl {
			return false, fmt.Sprintf("on timeline %d, older than the cluster's %d", l.Timeline, tl+1)
		}
	}
	if s.PrimaryRaceBackoff > 0 && !l.WALChangedAt.IsZero() && v.Now.Sub(l.WALChangedAt) < s.PrimaryRaceBackoff {
		return false, "WAL position still advancing (primary_race_backoff)"
	}
	if !syncVoter(v, v.Me) {
		return false, fmt.Sprintf("synchronous_mode %s: not the last primary or a standby of the sync key (%s)",
			s.SyncMode, strings.Join(v.Cluster.Sync.SyncStandby, ","))
	}
	if !v.PeersProbed {
		return false, "members not probed yet"
	}
	var former string
	if f := v.Cluster.Failover; f != nil {
		former = f.Leader
	}
	for _, p := range v.Peers {
		if p.Name == v.Me || !p.Reachable {
			continue
		}
		if p.Primary {
			return false, fmt.Sprintf("primary %s is still alive", p.Name)
		}
		if p.NoFailover || p.WatchdogFailed || p.Name == former || !syncVoter(v, p.Name) {
			continue
		}
		if p.Priority > s.Priority && (v.Cluster.Status.Optime == 0 || v.Cluster.Status.Optime-p.WALEnd <= s.MaximumLagOnFailover) {
			// Rule fast-forward: a member with a higher failover_priority within
			// maximum_lag_on_failover is preferred; if it is behind, it catches up first.
			return false, fmt.Sprintf("%s has a higher failover_priority (it catches up first if it is behind)", p.Name)
		}
		if p.WALEnd > l.WALEnd {
			return false, fmt.Sprintf("%s is ahead in WAL (%d > %d)", p.Name, p.WALEnd, l.WALEnd)
		}
	}
	return canPromoteSync(v)
}

// syncOn: a synchronous mode is configured.
func syncOn(s Settings) bool { return s.SyncMode == "on" || s.SyncMode == "quorum" }

// syncPrepare are the steps before this member starts writing as the primary in a synchronous
// mode (a promotion, or a start of the stopped primary): the sync key names only this member, so
// nobody may be promoted on the strength of the previous primary's standbys, and commits wait
// for nobody yet (or, strict, for a standby that does not exist) until the next cycles pick the
// synchronous standbys.
func syncPrepare(v View) []Action {
	if !syncOn(v.Settings) {
		return nil
	}
	var acts []Action
	if k := v.Cluster.Sync; k == nil || !strings.EqualFold(k.Leader, v.Me) || len(k.SyncStandby) > 0 {
		a := act(WriteSyncKey)
		a.SyncKey = dcs.Sync{Leader: v.Me}
		if k != nil {
			a.SyncVersion = k.Version
		}
		acts = append(acts, a)
	}
	g := act(SetSyncGUC)
	if v.Settings.SyncStrict {
		g.GUC = strictHold(v.Settings.SyncMode)
	}
	return append(acts, g)
}

// leaderSync adds the leader's next synchronous replication step to p.
func leaderSync(v View, p Plan) Plan {
	l := v.Local
	if !l.Ready || !l.Primary {
		return p
	}
	s := v.Settings
	step, why := NextSyncStep(SyncInput{
		Mode: s.SyncMode, Strict: s.SyncStrict, Want: max(s.SyncNodeCount, 1), MaxLag: s.MaxLagOnSyncnode,
		Me: v.Me, Key: v.Cluster.Sync, GUC: l.SyncGUC, Managed: l.SyncManaged, Confirm: l.SyncConfirm,
		Replicas: l.Replicas, Members: v.Cluster.Members,
	})
	if step.Kind == 0 {
		return p
	}
	a := act(step.Kind)
	a.SyncKey, a.GUC = step.Key, step.GUC
	if k := v.Cluster.Sync; k != nil {
		a.SyncVersion = k.Version
	}
	p.Actions = append(p.Actions, a)
	p.Reason += "; " + why
	return p
}

// syncVoter: in a synchronous mode with a sync key, name may be promoted automatically (it is the
// key's leader or one of its standbys); without a key, everybody may.
func syncVoter(v View, name string) bool {
	k := v.Cluster.Sync
	if !syncOn(v.Settings) || k == nil || k.Leader == "" {
		return true
	}
	return strings.EqualFold(k.Leader, name) || k.Has(name)
}

// decideStandbyLeader is the lock holder of a standby cluster: it runs as a replica of the
// remote primary and is never promoted; a primary (the cluster was just made a standby cluster:
// demote-cluster) is stopped cleanly and started as the standby leader. A switchover hands the
// lock to another member as on a primary (Patroni does the same): the target becomes the
// standby leader and this member cascades from it.
func decideStandbyLeader(v View) Plan {
	l := v.Local
	f := v.Cluster.Failover
	switch {
	case l.Primary && v.Settings.Pause:
		return plan("pause: standby_cluster is set but this leader runs as primary; not demoting", act(RenewLeader))
	case l.Primary:
		return plan("standby_cluster is set: demoting the primary to a standby leader", act(RenewLeader), act(DemoteCluster))
	case f != nil && v.Settings.Pause:
		// Patroni's rule: in maintenance mode the lock holder of a standby cluster leaves the
		// request alone (nothing is promoted in a standby cluster, paused or not).
		return plan("pause: a switchover in a standby cluster waits until maintenance mode ends", act(RenewLeader))
	case f != nil:
		return leaderFailoverRequest(v, f)
	case l.Upstream != RemoteUpstream:
		return plan("standby leader: following the remote primary", act(RenewLeader), actOn(Follow, RemoteUpstream))
	}
	return plan("I am the standby leader with the lock", act(RenewLeader))
}

// UpstreamOf is the member a replica streams from: the member its replicatefrom tag names
// (cascading replication, as Patroni), as long as that member's key says it is running and the
// chain of replicatefrom tags from it reaches the leader without coming back to this member;
// otherwise the leader. Unlike Patroni, a stopped or looping upstream is not followed: the
// replica streams from the leader until its upstream runs again.
func UpstreamOf(v View, leader string) string {
	return cascadeSource(v.Cluster, v.Me, v.Settings.ReplicateFrom, leader)
}

// cascadeSource is UpstreamOf for member me whose replicatefrom tag is from.
func cascadeSource(c *dcs.Cluster, me, from, leader string) string {
	if from == "" || from == me || leader == "" {
		return leader
	}
	seen := map[string]bool{me: true}
	for cur := from; cur != leader; {
		m := c.Member(cur)
		if m == nil || seen[cur] || m.Data.State != "running" {
			return leader
		}
		seen[cur] = true
		next := patroni.ReplicateFrom(m.Data.Tags)
		if next == "" || next == cur || c.Member(next) == nil {
			break // cur streams from the leader
		}
		cur = next
	}
	return from
}
