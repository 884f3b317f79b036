package ha

// Publish: the member key, the Status snapshot the REST API reads, and the leader's upkeep of
// the status, slot and failsafe keys.

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

func (n *Node) connURL() string { return "postgres://" + n.cfg.PostgreSQL.ConnectAddress + "/postgres" }

func (n *Node) apiURL() string {
	scheme := "http://"
	if n.cfg.RestAPI.CertFile != "" {
		scheme = "https://"
	}
	return scheme + n.cfg.RestAPI.ConnectAddress + "/patroni"
}

// publish writes the member key and swaps in the new Status.
func (n *Node) publish(v View, p Plan) {
	ttl, _, rt := n.dyn.TimingDurations()
	leaseHeld, leaseExpiry := n.lease.state()
	job, checkpointed := n.job, n.checkpointed
	failsafeOn, restartAt := n.failsafeOn, n.restartAt
	// A replica takes part in failsafe mode while the primary's confirmations keep coming.
	failsafeReplica := n.failsafeLeader() != ""
	isLeader := HoldsLock(leaseHeld, v.Cluster.LeaderName(), n.cfg.Name)
	running := n.pg.Running()

	st := &Status{
		Name: n.cfg.Name, Scope: n.cfg.Scope, Version: n.version,
		State: pgState(job, running, n.pgReady), Role: "uninitialized",
		SystemIdentifier: n.sysID, Timeline: v.Local.Timeline,
		IsLeader: isLeader, ClusterUnlocked: v.Cluster.LeaderName() == "" || !v.DCSOK,
		DCSReachable: v.DCSOK, DCSLastSeen: n.lastSeen, Pause: n.dyn.Pause,
		LeaderOptime: v.Cluster.Status.Optime, Cluster: v.Cluster, Tags: n.cfg.Tags.Map(),
		TTL: ttl, MaximumLagOnFailover: n.dyn.MaximumLagOnFailover, LastLoop: n.now(),
		FailsafeEnabled: n.dyn.FailsafeMode, FailsafeActive: (failsafeOn || failsafeReplica) && !v.DCSOK,
		WatchdogFailed: n.wd.Failed() || !n.watchdogUsable(), ScheduledRestart: restartAt,
		lastLeader: n.lastLeader, dyn: n.dyn,
	}
	if isLeader {
		st.LeaderUntil = leaseExpiry.Add(-FenceMargin(n.settings()))
	}
	switch {
	case job == JobClone || job == JobReclone:
		// pg_basebackup is still writing: its pg_control is the primary's, the data a replica's.
		st.Role = "replica"
	case job == JobBootstrap:
		// initdb's cluster runs as the primary once it is there; a standby cluster's copy of the
		// remote primary as a replica.
		if v.Local.DataDir == DataDirValid {
			st.Role = "primary"
			if v.Settings.StandbyCluster {
				st.Role = "replica"
			}
		}
	case v.Local.DataDir == DataDirValid:
		st.Role = "replica"
		if v.Local.Primary || (!running && v.Local.WasPrimary) {
			st.Role = "primary"
		}
	}
	st.StandbyCluster = v.Settings.StandbyCluster
	if st.Role == "replica" && isLeader && st.StandbyCluster {
		st.Role = "standby_leader"
	}
	md := dcs.MemberData{
		ConnURL: n.connURL(),
		APIURL:  n.apiURL(),
		State:   st.State, Role: st.Role, Version: n.version, Timeline: v.Local.Timeline,
		Tags: st.Tags, CheckpointAfterPromote: checkpointed, Pause: n.dyn.Pause,
		ScheduledRestart: restartAt.Member(),
	}
	if len(md.Tags) == 0 {
		md.Tags = nil
	}
	st.SyncMode = n.dyn.SyncMode()
	if st.Role == "replica" && v.Cluster.Sync.Has(n.cfg.Name) {
		st.SyncStandby = st.SyncMode == "on"
		st.QuorumStandby = st.SyncMode == "quorum"
	}
	if running && n.pgReady {
		n.publishPostgres(st, &md, rt)
	}
	n.status.Store(st)
	if from := n.metrics.role(st.Role); from != "" {
		n.log.Info("role changed", "from", from, "to", st.Role, "state", st.State, "running", running)
	}

	if !v.DCSOK {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rt)
	defer cancel()
	if err := n.dcs.TouchMember(ctx, md); err != nil {
		n.log.Warn("writing the member key failed", "err", err)
	}
	// A standby leader keeps the status key and its cascading replicas' slots too.
	switch {
	case isLeader && running && n.pgReady && (!n.lastPG.InRecovery || v.Settings.StandbyCluster):
		n.leaderHousekeeping(ctx, v)
	case running && n.pgReady && n.lastPG.InRecovery && n.dyn.PostgreSQL.UseSlots && v.Job == NoJob:
		// Replicas keep copies of the slots a new primary would need (member_slots_ttl,
		// permanent slots) and the slots of the members that cascade from them.
		n.syncSlots(ctx, v, false)
	}
}

// publishPostgres fills in what the running postgres reported this cycle, in the status and in
// the member key.
func (n *Node) publishPostgres(st *Status, md *dcs.MemberData, rt time.Duration) {
	pg := n.lastPG
	st.PostmasterStartTime, st.ServerVersion, st.PendingRestart = pg.PostmasterStartTime, pg.ServerVersion, pg.PendingRestart
	st.Timeline = pg.Timeline
	md.Timeline = pg.Timeline
	md.PendingRestart = pg.PendingRestart
	if pg.PendingRestart {
		st.PendingRestartReason = n.pendingRestartReason(rt)
		md.PendingRestartReason = st.PendingRestartReason
	}
	wal := pg.WALPosition
	md.XLogLocation = &wal
	if pg.InRecovery {
		st.ReceivedLocation, st.ReplayedLocation = pg.ReceiveLSN, pg.ReplayLSN
		st.ReplayedTimestamp, st.ReplayPaused = pg.ReplayTimestamp, pg.ReplayPaused
		st.LatestEndLSN = pg.LatestEndLSN
		st.ReplicationState = "in archive recovery"
		if pg.Streaming {
			st.ReplicationState = "streaming"
		}
		rl, pl := pg.ReceiveLSN, pg.ReplayLSN
		md.ReceiveLSN, md.ReplayLSN, md.ReplicationState = &rl, &pl, st.ReplicationState
	} else {
		st.XLogLocation = pg.WALPosition
		for _, r := range pg.Replication {
			st.Replication = append(st.Replication, Replication{Usename: r.Usename, ApplicationName: r.ApplicationName,
				ClientAddr: r.ClientAddr, State: r.State, SyncState: r.SyncState, SyncPriority: r.SyncPriority})
		}
	}
}

// pendingRestartReason pairs the running value of each parameter waiting for a restart with the
// configured one (Patroni's pending_restart_reason).
func (n *Node) pendingRestartReason(rt time.Duration) map[string]PendingChange {
	ctx, cancel := context.WithTimeout(context.Background(), rt)
	defer cancel()
	running, err := n.pg.PendingRestartSettings(ctx)
	if err != nil || len(running) == 0 {
		return nil
	}
	out := make(map[string]PendingChange, len(running))
	for name, old := range running {
		out[name] = PendingChange{OldValue: old, NewValue: n.pgConf.Parameters[name]}
	}
	return out
}

// leaderHousekeeping keeps the status key (optime, slots, retain_slots, as Patroni 4 writes
// it) and the slots in step.
func (n *Node) leaderHousekeeping(ctx context.Context, v View) {
	pg := n.lastPG
	n.maintainFailsafe(ctx, v.Cluster)
	st := dcs.Status{Optime: pg.WALPosition}
	if n.dyn.PostgreSQL.UseSlots {
		st.Slots, st.RetainSlots = n.syncSlots(ctx, v, true)
	}
	if old := v.Cluster.Status; old.Optime != st.Optime || !maps.Equal(old.Slots, st.Slots) ||
		!slices.Equal(old.RetainSlots, st.RetainSlots) {
		if err := n.dcs.SetStatus(ctx, st); err != nil {
			n.log.Warn("writing the status key failed", "err", err)
		}
	}
}

// syncSlots keeps this member's replication slots as slots.go's rules say (loop goroutine
// only). On the leader it returns the positions and the retain_slots list to publish.
func (n *Node) syncSlots(ctx context.Context, v View, leader bool) (map[string]int64, []string) {
	have, err := n.pg.Slots(ctx)
	if err != nil {
		n.log.Warn("reading replication slots failed", "err", err)
		return v.Cluster.Status.Slots, v.Cluster.Status.RetainSlots
	}
	if n.retainSeen == nil {
		// Every slot the leader retained gets a full member_slots_ttl from now.
		n.retainSeen = map[string]time.Time{}
		for _, name := range v.Cluster.Status.RetainSlots {
			if config.SlotNameRE.MatchString(name) { // a DCS value: garbage is not carried on
				n.retainSeen[name] = n.now()
			}
		}
	}
	// Replicas keep the same bookkeeping for the copies they hold: promoted, a replica still
	// retains the slot of the former leader, whose member key expired with its lease (the
	// former leader's retain_slots never lists the leader itself).
	retained, expired := RetainSlots(n.retainSeen, v.Cluster, n.cfg.Name, have, n.dyn, n.now())
	for _, name := range expired {
		n.log.Info("replication slot of an absent member expired", "slot", name, "member_slots_ttl", n.dyn.MemberSlotsTTL)
	}
	if !leader {
		retained = slices.Compact(slices.Sorted(slices.Values(append(retained, v.Cluster.Status.RetainSlots...))))
	}
	sv := n.slotView(v.Cluster, n.dyn, leader, v.Settings.NoFailover, retained)
	want, problems := n.applySlotsTo(ctx, sv, have, func(name string) bool { return n.slotsOwned[name] })
	for name := range want {
		n.slotsOwned[name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(problems)) {
		if why := problems[name]; !n.slotsWarned[name+": "+why] {
			n.slotsWarned[name+": "+why] = true
			n.log.Error("replication slot: "+why, "slot", name)
		}
	}
	for _, s := range have {
		if _, ok := want[s.Name]; !ok && !s.Active && !n.slotsOwned[s.Name] && !n.slotsWarned[s.Name] {
			n.slotsWarned[s.Name] = true
			n.log.Info("replication slot is not tusker's: left alone", "slot", s.Name, "logical", s.Logical,
				"restart_lsn", patroni.FormatLSN(s.RestartLSN))
		}
	}
	if !leader {
		return nil, nil
	}
	return PublishedSlots(want, have, n.dyn), retained
}

func (n *Node) slotView(c *dcs.Cluster, d config.Dynamic, leader, noFailover bool, retained []string) SlotView {
	return SlotView{Me: n.cfg.Name, Leader: leader, Standby: d.Standby() != nil, Cluster: c, Dyn: d,
		NoFailover: noFailover, Retained: retained}
}

// applySlots reads the server's slots and applies the rules of sv (a long action may call it).
func (n *Node) applySlots(ctx context.Context, sv SlotView, owned func(string) bool) {
	have, err := n.pg.Slots(ctx)
	if err != nil {
		n.log.Warn("reading replication slots failed", "err", err)
		return
	}
	n.applySlotsTo(ctx, sv, have, owned)
}

// applySlotsTo applies the rules of sv to the server's slots have; it returns the wanted slots
// and SlotOps' problems.
func (n *Node) applySlotsTo(ctx context.Context, sv SlotView, have []postgres.SlotInfo, owned func(string) bool) (map[string]Slot, map[string]string) {
	want := WantedSlots(sv)
	ops, problems := SlotOps(want, have, owned, sv.Dyn)
	if err := n.pg.ApplySlots(ctx, ops); err != nil {
		n.log.Warn("managing replication slots failed", "err", err)
	}
	return want, problems
}

func pgState(job Job, running, ready bool) string {
	switch job {
	case JobBootstrap:
		return "initializing new cluster"
	case JobClone, JobReclone:
		return "creating replica"
	case JobStart, JobRewind:
		return "starting"
	case JobDemote, JobDemoteCluster:
		return "stopping"
	}
	switch {
	case running && ready:
		return "running"
	case running:
		return "starting"
	}
	return "stopped"
}

// publishShutdown shows state ("stopping", then "stopped") in the REST status while tusker shuts
// down. The replicas probe this member before they race for the lock it releases: a status still
// saying "running primary" would make them wait a loop for it to go away. And /primary stops
// answering 200 before postgres stops taking writes.
func (n *Node) publishShutdown(state string) {
	cur := n.status.Load()
	if cur == nil {
		return
	}
	st := *cur
	st.State = state
	if state == "stopped" {
		st.IsLeader, st.LeaderUntil = false, time.Time{}
	}
	n.status.Store(&st)
}
