package ha

// Observe: the loop's reading of the DCS and the local PostgreSQL into one View, and the
// bookkeeping of what it saw over time.

import (
	"context"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

// observe reads the DCS, the local postgres and, when racing, the peers, into one View.
func (n *Node) observe(ctx context.Context) View {
	_, _, rt := n.dyn.TimingDurations()
	v := View{Me: n.cfg.Name}

	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		if n.since(n.dcsErrLogged) > 10*time.Second {
			n.log.Warn("reading the cluster from the DCS failed", "err", err)
			n.dcsErrLogged = n.now()
		}
		v.Cluster = n.lastCluster
		if v.Cluster == nil {
			v.Cluster = &dcs.Cluster{}
		}
	} else {
		v.DCSOK = true
		v.Cluster = cl
		n.dcsErrLogged = time.Time{}
		n.lastCluster, n.lastSeen = cl, n.now()
		if l := cl.LeaderName(); l != "" {
			n.lastLeader = l
		}
		ttl, _, _ := n.dyn.TimingDurations()
		n.members.update(cl, n.lastSeen, 2*ttl)
		for _, k := range cl.Invalid {
			n.log.Debug("skipping a DCS key with an unparsable value", "key", k)
		}
		n.applyDynamic(cl)
	}
	v.Settings = n.settings()

	v.LeaseHeld, v.LeaseExpiry = n.lease.state()
	v.Job = n.job
	v.RaceBackoffUntil = n.raceBackoff
	v.RenewFailed = n.renewFailed
	v.FailsafeLeader = n.failsafeLeader()

	v.Local = n.observeLocal(ctx, rt, v.Cluster)
	v.Local.Upstream = n.upstream
	v.Local.HandedOver = n.handedOver && !v.Local.Running
	v.Local.WatchdogUsable = n.watchdogUsable()
	n.observeSync(&v)
	leader := v.Cluster.LeaderName()

	n.observeProgress(&v.Local, leader)
	if d, ok := n.diverged[leader]; ok && leader != "" {
		v.Local.Diverged = &d
	}
	v.Local.RewindFailed = n.rewindFailed[leader]

	if needPeers(v, n.cfg.Name, n.now()) {
		probe := v.Cluster
		if leader == "" {
			// A race: ask the members whose keys expired in a DCS outage too.
			probe = &dcs.Cluster{Members: n.members.withAbsent(v.Cluster)}
		}
		v.Peers = n.probePeers(ctx, probe, rt)
		v.PeersProbed = true
	}

	// Failsafe mode: a leader cut off from the DCS asks every member to confirm it.
	if FailsafeConfirmationNeeded(v) {
		n.failsafeRound(ctx, &v, rt)
	}
	n.failsafeOn = v.FailsafeConfirmed
	v.Now = n.now()
	return v
}

// observeProgress keeps the timers of the local server's progress: since when the leader's
// postgres is down (primary_start_timeout), since when a replica's receiver stalled, and when the
// WAL position last moved (primary_race_backoff).
func (n *Node) observeProgress(l *Local, leader string) {
	// Bookkeeping for primary_start_timeout and primary_race_backoff.
	if leader == n.cfg.Name && l.DataDir == DataDirValid && !l.Ready {
		if n.downSince.IsZero() {
			n.downSince = n.now()
		}
	} else if l.Ready {
		n.downSince = time.Time{}
	}
	l.DownSince = n.downSince
	if l.Ready && !l.Primary && !n.lastPG.Streaming && l.Upstream != "" {
		if n.stalledSince.IsZero() || n.stalledFrom != l.Upstream {
			n.stalledSince, n.stalledFrom = n.now(), l.Upstream
		}
	} else {
		n.stalledSince, n.stalledFrom = time.Time{}, ""
	}
	l.StalledSince = n.stalledSince
	if l.WALEnd != n.lastWAL {
		n.lastWAL, n.walChangedAt = l.WALEnd, n.now()
	}
	l.WALChangedAt = n.walChangedAt
}

// applyDynamic adopts the dynamic configuration from the config key when it parses and is valid.
func (n *Node) applyDynamic(cl *dcs.Cluster) {
	if cl.Config == nil || cl.Config.Version == n.dynVersion {
		return // unchanged since the last read: applied, or already reported as invalid
	}
	n.dynVersion = cl.Config.Version
	d, err := config.ParseDynamic(cl.Config.Value)
	if err != nil {
		n.log.Warn("ignoring the config key: it does not parse", "err", err)
		return
	}
	if probs := d.Validate(); len(probs) > 0 {
		n.log.Warn("ignoring the config key: invalid", "problems", strings.Join(probs, "; "))
		return
	}
	ch := DynamicConfigChange(n.dyn, d)
	if ch.SetTTL {
		n.dcs.SetTTL(time.Duration(d.TTL) * time.Second)
	}
	if ch.SetRetryTimeout {
		n.dcs.SetRetryTimeout(time.Duration(d.RetryTimeout) * time.Second)
	}
	if ch.PauseOn {
		n.log.Warn("PAUSE: maintenance mode on: tusker will not change postgres automatically")
		n.disableWatchdog()
	}
	if ch.PauseOff {
		n.log.Info("maintenance mode off: resuming automatic management")
		n.forgetRejoin()
	}
	if ch.RemoteChanged && n.upstream == RemoteUpstream {
		n.log.Info("standby_cluster changed: following the remote primary again")
		n.upstream = "" // Decide's standby-leader rule follows the remote again
	}
	n.dyn = d
	n.log.Info("dynamic configuration applied", "version", cl.Config.Version,
		"ttl", d.TTL, "loop_wait", d.LoopWait, "retry_timeout", d.RetryTimeout,
		"primary_start_timeout", d.PrimaryStartTimeout, "pause", d.Pause, "failsafe_mode", d.FailsafeMode)
}

func (n *Node) observeLocal(ctx context.Context, rt time.Duration, cl *dcs.Cluster) Local {
	var l Local
	switch n.pg.DataDirState() {
	case postgres.DataDirEmpty:
		l.DataDir = DataDirEmpty
		n.sysID, n.canRewind = "", nil
		// Whatever runs in this directory later was started by this process (bootstrap, clone),
		// which fires on_start itself: nothing is left to adopt.
		n.adopted = true
		return l
	case postgres.DataDirInvalid:
		l.DataDir = DataDirInvalid
		if err := n.pg.DataDirUnreadable(); err != nil {
			l.DataDirError = err.Error()
		}
		return l
	}
	l.DataDir = DataDirValid
	l.Running = n.pg.Running()
	if !n.adopted {
		n.adopted, n.adoptRunning = true, l.Running
	}
	if !l.Running || n.sysID == "" {
		qctx, cancel := context.WithTimeout(ctx, rt)
		cd, err := n.pg.ControlData(qctx)
		cancel()
		if err != nil {
			n.log.Warn("reading pg_controldata failed", "err", err)
		} else {
			n.sysID = cd.SystemIdentifier
			// A fresh clone's pg_control says "in production" (copied from the primary) but its
			// standby.signal says what it will run as.
			l.WasPrimary = (cd.State == "in production" || cd.State == "shut down") && !n.pg.StandbySignal()
			l.Timeline = cd.Timeline
		}
	}
	l.SysID = n.sysID
	if !l.Running {
		if n.canRewind == nil {
			ok, why := n.pg.CanRewind(ctx)
			n.canRewind = &ok
			if !ok {
				n.log.Info("pg_rewind is not possible on this data directory", "reason", why)
			}
		}
		l.CanRewind = *n.canRewind
		n.pgReady = false
		return l
	}
	qctx, cancel := context.WithTimeout(ctx, rt)
	st, err := n.pg.State(qctx)
	cancel()
	if err != nil {
		n.pgReady = false
		return l
	}
	n.lastPG, n.pgReady = st, true
	if n.adoptRunning {
		// A postgres that was already running when tusker started: on_start fires once for it,
		// as Patroni does.
		n.adoptRunning = false
		if !st.InRecovery {
			n.setRole("primary")
		}
		n.fire("on_start")
	}
	l.Ready = true
	l.Primary = !st.InRecovery
	l.Timeline = st.Timeline
	l.WALEnd = st.WALPosition
	return l
}
