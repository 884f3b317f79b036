// Package ha is tusker's decision core and the loop around it: Decide is a pure function from an
// observed View of the cluster to a Plan of actions; Node observes, decides, acts and publishes.
package ha

import (
	"fmt"
	"time"

	"github.com/tusker-ha/tusker/dcs"
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
	DataDir  DataDir
	SysID    string // from pg_controldata; "" when unknown
	Running  bool   // the postmaster is alive
	Ready    bool   // it answered a query this cycle
	Primary  bool   // running and not in recovery
	Timeline int
	WAL      int64 // primary: flush LSN; replica: max(received, replayed)
	// WasPrimary: pg_controldata says the stopped cluster last ran as a primary ("in production"
	// or "shut down"), as opposed to a standby.
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
}

// Peer is what a member reported on GET /patroni while this node raced for leadership.
type Peer struct {
	Name       string
	Reachable  bool
	Primary    bool // reports role primary while running
	WAL        int64
	Timeline   int
	NoFailover bool
	Priority   int
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
}

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
	// Action is the long action in progress ("" for none).
	Action string

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
)

var kindNames = map[Kind]string{
	Fence: "fence", RenewLeader: "renew leader", AcquireLeader: "acquire leader", ReleaseLeader: "release leader",
	Bootstrap: "bootstrap", Clone: "clone", StartPrimary: "start primary", StartReplica: "start replica",
	Follow: "follow", Promote: "promote", Demote: "demote", Rewind: "rewind", Reclone: "reclone",
	ClaimInitialize: "claim initialize", RefuseForeignData: "refuse foreign data", ProbeRewind: "probe rewind",
}

func (k Kind) String() string { return kindNames[k] }

// Action is one step of a plan.
type Action struct {
	Kind     Kind
	Upstream string // member name, for Clone, StartReplica, Follow, Rewind, Reclone, ProbeRewind
}

// Plan is Decide's answer: actions in order and one line saying why.
type Plan struct {
	Actions []Action
	Reason  string
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

// Decide is the whole of tusker's HA policy: a pure function of the view (no I/O, no clock, no
// randomness). Rules are checked in order; the first that applies returns.
func Decide(v View) Plan {
	c := v.Cluster
	leader := c.LeaderName()
	iAmLeader := leader == v.Me && v.LeaseHeld

	// Rule lease-deadline: a leader whose lease is about to run out stops writes first, whatever
	// else is going on. The others may take the lock at LeaseExpiry.
	if v.LeaseHeld && !v.Now.Before(v.LeaseExpiry.Add(-FenceMargin(v.Settings))) {
		acts := []Action{act(Fence)}
		if v.DCSOK {
			acts = append(acts, act(ReleaseLeader))
		}
		return plan(fmt.Sprintf("leader lease could not be renewed before %s: stopping postgres",
			v.LeaseExpiry.Format(time.RFC3339Nano)), acts...)
	}

	// Rule dcs-unreachable: without a fresh snapshot nothing changes, except lease bookkeeping.
	if !v.DCSOK {
		if v.LeaseHeld {
			return plan(fmt.Sprintf("DCS unreachable: still leader, lease valid for %s",
				v.LeaseExpiry.Sub(v.Now).Round(time.Millisecond)), act(RenewLeader))
		}
		return plan("DCS unreachable: keeping postgres as it is")
	}

	// Rule lost-leader-key: we thought we led, but the key says otherwise.
	if v.LeaseHeld && leader != v.Me {
		if v.Local.Running && v.Local.Primary {
			return plan(fmt.Sprintf("leader key lost to %q: stopping postgres", leader), act(Fence))
		}
	}

	// Rule action-in-progress: while a long action runs, the leader only renews.
	if v.Action != "" {
		if iAmLeader {
			return plan("leader, "+v.Action+" in progress: renewing the lease", act(RenewLeader))
		}
		if v.Action == Promote.String() && leader != v.Me {
			return plan("lost the leader key while promoting: stopping postgres", act(Fence))
		}
		return plan(v.Action + " in progress")
	}

	l := v.Local
	switch l.DataDir {
	case DataDirInvalid:
		return plan("data directory is not empty and is not a PostgreSQL data directory: not touching it")
	case DataDirEmpty:
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
		return plan("no data and no cluster: racing to bootstrap a new one", act(Bootstrap))
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
		if t, _ := m.Data.Tags["clonefrom"].(bool); t && m.Data.State == "running" && m.Data.Role == "replica" {
			return m.Name
		}
	}
	return leader
}

func decideStopped(v View, leader string, iAmLeader bool) Plan {
	l := v.Local
	c := v.Cluster
	if c.Initialize == nil && leader == "" {
		return plan("data directory present but no initialize key: claiming the cluster with it", act(ClaimInitialize))
	}
	switch {
	case leader == v.Me:
		if !v.LeaseHeld {
			// Our previous incarnation's key: take it back through the lease before acting.
			return plan("leader key carries my name from before a restart: taking it back", act(AcquireLeader))
		}
		if l.WasPrimary {
			return plan("leader with postgres stopped: starting it as primary", act(RenewLeader), act(StartPrimary))
		}
		return plan("leader, but the stopped data directory is a standby's: releasing the lock", act(ReleaseLeader))
	case leader != "":
		// Rule rejoin: never stream from a leader on a diverged timeline.
		if leaderCheckpointPending(c, leader) {
			return plan(fmt.Sprintf("waiting for %s to checkpoint after its promotion before rejoining", leader))
		}
		if l.Diverged == nil {
			return plan(fmt.Sprintf("checking whether the data directory diverged from %s", leader), actOn(ProbeRewind, leader))
		}
		if !*l.Diverged {
			return plan(fmt.Sprintf("starting as a replica of %s", leader), actOn(StartReplica, leader))
		}
		s := v.Settings
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
		// No leader: start read-only, so that this member can be compared and race if it is the best.
		return plan("no leader: starting postgres as a replica to join the race", actOn(StartReplica, ""))
	}
}

func leaderCheckpointPending(c *dcs.Cluster, leader string) bool {
	m := c.Member(leader)
	return m != nil && m.Data.CheckpointAfterPromote != nil && !*m.Data.CheckpointAfterPromote
}

func decideRunning(v View, leader string, iAmLeader bool) Plan {
	l := v.Local
	switch {
	case iAmLeader:
		if !l.Primary {
			return plan("holding the leader key: promoting", act(RenewLeader), act(Promote))
		}
		return plan("I am the leader with the lock", act(RenewLeader))
	case leader == v.Me:
		// The key carries our name but our lease is not confirmed (a tusker restart).
		return plan("leader key carries my name from before a restart: taking it back", act(AcquireLeader))
	case leader != "":
		if l.Primary {
			return plan(fmt.Sprintf("%s holds the leader key: demoting", leader), act(Demote))
		}
		if l.Upstream != leader {
			return plan(fmt.Sprintf("following the new leader %s", leader), actOn(Follow, leader))
		}
		return plan(fmt.Sprintf("following leader %s", leader))
	}
	// No leader.
	if l.Primary {
		// Rule stale-primary: a primary on an older timeline than the cluster's history never
		// takes the lock back.
		if tl := historyTimeline(v.Cluster); tl > 0 && l.Timeline <= tl {
			return plan(fmt.Sprintf("running as primary on timeline %d but the cluster moved to %d: demoting", l.Timeline, tl+1), act(Demote))
		}
		return plan("no leader and I am a running primary: taking the lock", act(AcquireLeader))
	}
	if ok, why := healthiest(v); !ok {
		return plan("no leader; not racing: " + why)
	}
	return plan("no leader and I am the healthiest member: acquiring the lock", act(AcquireLeader))
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
	if !l.Ready {
		return false, "postgres is not ready"
	}
	if opt := v.Cluster.Status.Optime; opt > 0 && opt-l.WAL > s.MaximumLagOnFailover {
		return false, fmt.Sprintf("lagging %d bytes behind the last leader position, more than maximum_lag_on_failover %d",
			opt-l.WAL, s.MaximumLagOnFailover)
	}
	if s.CheckTimeline {
		if tl := historyTimeline(v.Cluster); tl > 0 && l.Timeline <= tl {
			return false, fmt.Sprintf("on timeline %d, older than the cluster's %d", l.Timeline, tl+1)
		}
	}
	if !v.PeersProbed {
		return false, "members not probed yet"
	}
	for _, p := range v.Peers {
		if p.Name == v.Me || !p.Reachable {
			continue
		}
		if p.Primary {
			return false, fmt.Sprintf("primary %s is still alive", p.Name)
		}
		if p.NoFailover {
			continue
		}
		if p.WAL > l.WAL {
			return false, fmt.Sprintf("%s is ahead in WAL (%d > %d)", p.Name, p.WAL, l.WAL)
		}
		if p.WAL == l.WAL && p.Priority > s.Priority {
			return false, fmt.Sprintf("%s has the same WAL position and a higher failover_priority", p.Name)
		}
	}
	return true, ""
}
