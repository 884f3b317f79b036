package ha

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

var _ Manager = (*Node)(nil)

func res(code int, format string, args ...any) Result {
	return Result{Code: code, Message: fmt.Sprintf(format, args...)}
}

// switchoverPoll is how often a switchover call re-reads the DCS while it waits for the result.
const switchoverPoll = 20 * time.Millisecond

// Switchover implements Manager: checks as Patroni's is_failover_possible, the failover key, then
// waits (up to 2*max(10 s, loop_wait)) for the new primary.
func (n *Node) Switchover(ctx context.Context, req SwitchoverRequest) Result {
	action := "switchover"
	if req.Failover {
		action = "failover"
	}
	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		return res(http.StatusServiceUnavailable, "failed to read the cluster from DCS: %v", err)
	}
	oldLeader := cl.LeaderName()
	if req.Leader != "" && req.Leader != oldLeader {
		return res(http.StatusPreconditionFailed, "leader name does not match")
	}
	if !req.Failover && oldLeader == "" {
		return res(http.StatusPreconditionFailed, "leader name does not match")
	}
	// In synchronous mode on only a synchronous standby is known to have every commit, so a
	// switchover goes to one of them (as in Patroni; in quorum mode, and for a failover forced by
	// the operator, any member may be named).
	syncOnly := !req.Failover && n.snapshotDyn().SyncMode() == "on"
	var candidates []dcs.Member
	if req.Candidate != "" {
		m := cl.Member(req.Candidate)
		if m == nil {
			return res(http.StatusPreconditionFailed, "candidate does not exists")
		}
		if syncOnly && !cl.Sync.Has(m.Name) {
			return res(http.StatusPreconditionFailed, "candidate name does not match with sync_standby")
		}
		candidates = append(candidates, *m)
	} else {
		for _, m := range cl.Members {
			if m.Name != oldLeader && m.Data.APIURL != "" && (!syncOnly || cl.Sync.Has(m.Name)) {
				candidates = append(candidates, m)
			}
		}
		if len(candidates) == 0 && syncOnly {
			return res(http.StatusPreconditionFailed, "%s is not possible: can not find sync_standby", action)
		}
		if len(candidates) == 0 {
			return res(http.StatusPreconditionFailed, "%s is not possible: cluster does not have members except leader", action)
		}
	}
	if !req.At.IsZero() {
		// A scheduled switchover is checked again by the leader when it is due.
	} else if why := n.candidateProblem(ctx, candidates); why != "" {
		return res(http.StatusPreconditionFailed, "%s is not possible: %s", action, why)
	}

	f := dcs.Failover{Leader: req.Leader, Member: req.Candidate}
	if !req.At.IsZero() {
		at := req.At
		f.ScheduledAt = &at
	}
	version := int64(0)
	if cl.Failover != nil {
		version = cl.Failover.Version
	}
	if err := n.dcs.SetFailover(ctx, f, version); err != nil {
		return res(http.StatusServiceUnavailable, "failed to write failover key into DCS")
	}
	n.Wake()
	if !req.At.IsZero() {
		return res(http.StatusAccepted, "%s scheduled", title(action))
	}
	return n.waitSwitchover(ctx, action, oldLeader, req.Candidate)
}

// candidateProblem probes the candidates and returns "" when one of them could take over, or why
// none can.
func (n *Node) candidateProblem(ctx context.Context, members []dcs.Member) string {
	_, _, rt := n.snapshotDyn().TimingDurations()
	peers := n.probePeers(ctx, &dcs.Cluster{Members: members}, rt)
	// probePeers skips this member: a switchover posted to its own candidate answers for itself.
	for _, m := range members {
		if m.Name == n.name {
			if st := n.Status(); st != nil {
				peers = append(peers, Peer{Name: n.name, Reachable: true, NoFailover: patroni.NoFailover(st.Tags),
					WatchdogFailed: st.WatchdogFailed, Primary: st.Role == "primary" && st.State == "running"})
			}
		}
	}
	why := "no good candidates have been found"
	for _, p := range peers {
		switch {
		case !p.Reachable, p.NoFailover, p.WatchdogFailed, p.Primary:
		default:
			return ""
		}
	}
	return why
}

func (n *Node) waitSwitchover(ctx context.Context, action, oldLeader, candidate string) Result {
	_, lw, _ := n.snapshotDyn().TimingDurations()
	ctx, cancel := context.WithTimeout(ctx, 2*max(10*time.Second, lw))
	defer cancel()
	tick := time.NewTicker(switchoverPoll)
	defer tick.Stop()
	past := map[string]string{"switchover": "switched", "failover": "failed"}[action]
	for {
		select {
		case <-ctx.Done():
			return res(http.StatusServiceUnavailable, "%s status unknown", title(action))
		case <-tick.C:
		}
		cl, err := n.dcs.Cluster(ctx)
		if err != nil {
			continue
		}
		leader := cl.LeaderName()
		if leader != "" && leader != oldLeader {
			// The new leader holds the key; it is "in place" once it runs as primary (as the
			// standby leader in a standby cluster).
			if m := cl.Member(leader); m == nil || (m.Data.Role != "primary" && m.Data.Role != "standby_leader") ||
				m.Data.State != "running" {
				continue
			}
			if candidate == "" || candidate == leader {
				return res(http.StatusOK, "Successfully %s over to %q", past, leader)
			}
			return res(http.StatusOK, "%s over to %q instead of %q", title(past), leader, candidate)
		}
		if cl.Failover == nil && leader == oldLeader {
			return res(http.StatusServiceUnavailable, "%s failed", title(action))
		}
	}
}

func title(s string) string { return strings.ToUpper(s[:1]) + s[1:] }

// CancelSwitchover implements Manager.
func (n *Node) CancelSwitchover(ctx context.Context) Result {
	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		return res(http.StatusServiceUnavailable, "failed to read the cluster from DCS: %v", err)
	}
	if cl.Failover == nil || cl.Failover.ScheduledAt == nil {
		return res(http.StatusNotFound, "no switchover is scheduled")
	}
	if err := n.dcs.DeleteFailover(ctx); err != nil {
		return res(http.StatusServiceUnavailable, "failed to delete the failover key: %v", err)
	}
	n.Wake()
	return res(http.StatusOK, "scheduled switchover deleted")
}

// Restart implements Manager.
func (n *Node) Restart(ctx context.Context, req RestartRequest) Result {
	if !req.Schedule.IsZero() {
		taken := false
		if err := n.ask(ctx, func() {
			taken = n.restartAt != nil
			if !taken {
				n.restartAt = &ScheduledRestart{Schedule: req.Schedule, Role: req.Role,
					PostgresVersion: req.PostgresVersion, RestartPending: req.RestartPending}
				n.Wake() // the loop shortens its wait to the scheduled time
			}
		}); err != nil {
			return res(http.StatusServiceUnavailable, "scheduling the restart failed: %v", err)
		}
		if taken {
			return res(http.StatusConflict, "Another restart is already scheduled")
		}
		return res(http.StatusAccepted, "Restart scheduled")
	}
	return n.restartNow(ctx, req)
}

// restartConditions checks POST /restart's filters against the last published status.
func restartConditions(st *Status, req RestartRequest) bool {
	if st == nil {
		return false
	}
	if req.Role != "" && req.Role != st.Role {
		return false
	}
	if req.PostgresVersion > 0 && st.ServerVersion >= req.PostgresVersion {
		return false
	}
	if req.RestartPending && !st.PendingRestart {
		return false
	}
	return true
}

// restartNow restarts postgres now and returns when it is back (or after req.Timeout).
func (n *Node) restartNow(ctx context.Context, req RestartRequest) Result {
	if !restartConditions(n.Status(), req) {
		return res(http.StatusServiceUnavailable, "restart conditions are not satisfied")
	}
	var result <-chan error
	var serr error
	var pgCtlTimeout int
	if err := n.ask(ctx, func() {
		result, serr = n.startRestart()
		pgCtlTimeout = n.cfg.PostgreSQL.PgCtlTimeout
	}); err != nil {
		return res(http.StatusServiceUnavailable, "restart failed: %v", err)
	}
	if serr != nil {
		return res(http.StatusServiceUnavailable, "%v", serr)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		// Within the REST API's 60 s limit on a management request, so that the caller always
		// gets an answer; the restart itself goes on.
		timeout = min(2*time.Duration(pgCtlTimeout)*time.Second, 55*time.Second)
	}
	select {
	case err := <-result:
		if err != nil {
			return res(http.StatusServiceUnavailable, "restart failed: %v", err)
		}
		return res(http.StatusOK, "restarted successfully")
	case <-ctx.Done():
		return res(http.StatusServiceUnavailable, "restart failed: %v", ctx.Err())
	case <-time.After(timeout):
		return res(http.StatusServiceUnavailable, "restart failed: postgres not back after %s", timeout)
	}
}

// startRestart starts the restart of postgres with its current role as a long action:
// before_stop, fast stop, start, on_restart. Loop goroutine only; the channel gets how it ended.
func (n *Node) startRestart() (<-chan error, error) {
	result := make(chan error, 1)
	err := n.startJobResult(n.runCtx, JobRestart, func(ctx context.Context) error {
		opts := n.pg.Options()
		_, _, rt := n.env.dyn.TimingDurations()
		n.beforeStop(ctx, rt)
		if err := n.pg.Stop(ctx, postgres.StopFast); err != nil {
			return err
		}
		if err := n.pg.Start(ctx, opts); err != nil {
			return err
		}
		n.fire("on_restart")
		return nil
	}, result)
	if err != nil {
		return nil, err
	}
	n.Wake()
	return result, nil
}

// CancelRestart implements Manager.
func (n *Node) CancelRestart(ctx context.Context) Result {
	found := false
	if err := n.ask(ctx, func() {
		found = n.restartAt != nil
		n.restartAt = nil
	}); err != nil {
		return res(http.StatusServiceUnavailable, "cancelling the restart failed: %v", err)
	}
	if !found {
		return res(http.StatusNotFound, "no restarts are scheduled")
	}
	return res(http.StatusOK, "scheduled restart deleted")
}

// Reload implements Manager, as SIGHUP: the local configuration is read again and postgres is
// reloaded with it. A file that no longer loads keeps the running configuration (and says why).
func (n *Node) Reload(context.Context) Result {
	if n.reread != nil {
		c, err := n.reread()
		if err != nil {
			return res(http.StatusServiceUnavailable, "reload failed: the configuration does not load: %v", err)
		}
		n.UpdateConfig(c)
		return res(http.StatusAccepted, "reload scheduled")
	}
	n.reloadReq.Store(true)
	n.Wake()
	return res(http.StatusAccepted, "reload scheduled")
}

// Reinitialize implements Manager: remove the data directory and clone it again.
func (n *Node) Reinitialize(ctx context.Context, req ReinitRequest) Result {
	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		return res(http.StatusServiceUnavailable, "failed to read the cluster from DCS: %v", err)
	}
	leader := cl.LeaderName()
	switch leader {
	case "":
		return res(http.StatusServiceUnavailable, "Cluster has no leader, can not reinitialize")
	case n.name:
		return res(http.StatusServiceUnavailable, "I am the leader, can not reinitialize")
	}
	src := leader
	if !req.FromLeader {
		src = cloneSource(View{Me: n.name, Cluster: cl}, leader)
	}
	up, err := n.upstreamOf(cl, src)
	if err != nil {
		return res(http.StatusServiceUnavailable, "%v", err)
	}
	reinit := func(ctx context.Context) error {
		n.log.Warn("reinitialize: removing the data directory to clone it again", "from", up.Name)
		_, _, rt := n.env.dyn.TimingDurations()
		if err := n.stopPostgres(ctx, postgres.StopImmediate, true, rt); err != nil {
			return err
		}
		n.post(func() {
			n.upstream = ""
			n.forgetRejoin()
		})
		if err := n.pg.RemoveDataDir(); err != nil {
			return err
		}
		if err := n.pg.Basebackup(ctx, up); err != nil {
			return err
		}
		return n.startReplica(ctx, &up)
	}
	out := res(http.StatusOK, "reinitialize started")
	if err := n.ask(ctx, func() {
		if n.job != NoJob {
			if !req.Force {
				out = res(http.StatusServiceUnavailable, "%s already in progress", n.job)
				return
			}
			n.cancelAction()
		}
		if err := n.startJob(n.runCtx, JobReinitialize, reinit); err != nil {
			out = res(http.StatusServiceUnavailable, "%v", err)
			return
		}
		n.Wake()
	}); err != nil {
		return res(http.StatusServiceUnavailable, "reinitialize failed: %v", err)
	}
	return out
}

// Config implements Manager.
func (n *Node) Config(ctx context.Context) ([]byte, Result) {
	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		return nil, res(http.StatusBadGateway, "failed to read the cluster from DCS: %v", err)
	}
	if cl.Config == nil {
		return nil, res(http.StatusBadGateway, "no config key in the DCS")
	}
	return cl.Config.Value, res(http.StatusOK, "")
}

// checkDynamic parses and validates a proposed config value: "" when it may be written.
func checkDynamic(b []byte) string {
	d, err := config.ParseDynamic(b)
	if err != nil {
		return err.Error()
	}
	if probs := d.Validate(); len(probs) > 0 {
		return "invalid dynamic configuration: " + strings.Join(probs, "; ")
	}
	return ""
}

// PatchConfig implements Manager.
func (n *Node) PatchConfig(ctx context.Context, patch []byte) ([]byte, Result) {
	cl, err := n.dcs.Cluster(ctx)
	if err != nil {
		return nil, res(http.StatusServiceUnavailable, "failed to read the cluster from DCS: %v", err)
	}
	if cl.Config == nil {
		return nil, res(http.StatusServiceUnavailable, "no config key in the DCS")
	}
	merged, err := config.MergePatch(cl.Config.Value, patch)
	if err != nil {
		return nil, res(http.StatusBadRequest, "%v", err)
	}
	if why := checkDynamic(merged); why != "" {
		return nil, res(http.StatusBadRequest, "%s", why)
	}
	if err := n.dcs.SetConfig(ctx, merged, cl.Config.Version); err != nil {
		if errors.Is(err, dcs.ErrConflict) {
			return nil, res(http.StatusConflict, "Conflict: the configuration changed concurrently; read it again and retry")
		}
		return nil, res(http.StatusServiceUnavailable, "writing the config key failed: %v", err)
	}
	n.Wake()
	return merged, res(http.StatusOK, "")
}

// PutConfig implements Manager.
func (n *Node) PutConfig(ctx context.Context, body []byte) ([]byte, Result) {
	if why := checkDynamic(body); why != "" {
		return nil, res(http.StatusBadRequest, "%s", why)
	}
	if err := n.dcs.SetConfig(ctx, body, -1); err != nil {
		return nil, res(http.StatusBadGateway, "writing the config key failed: %v", err)
	}
	n.Wake()
	return body, res(http.StatusOK, "")
}

// Failsafe implements Manager: a replica records that the primary is alive and answers with its
// WAL position.
func (n *Node) Failsafe(_ context.Context, req FailsafeRequest) (int64, Result) {
	st := n.Status()
	if st == nil || !st.FailsafeEnabled {
		return 0, res(http.StatusBadGateway, "Failsafe mode is not enabled")
	}
	if st.Role == "primary" && st.State == "running" {
		return 0, res(http.StatusInternalServerError, "Running as a leader")
	}
	if req.Name == "" {
		return 0, res(http.StatusBadRequest, "name is required")
	}
	if !FailsafeSenderIsLeader(req.Name, st.lastLeader, st.Cluster) {
		// Anyone else's confirmation would stop this replica from racing for a leader that is
		// gone: only the last leader seen, listed in the failsafe key, vouches for itself.
		return 0, res(http.StatusForbidden, "Access is denied: %s is not the last known leader of the failsafe key", req.Name)
	}
	n.failsafeGrant.Store(&failsafeGrant{from: req.Name, at: n.now()})
	return max(st.ReceivedLocation, st.ReplayedLocation), res(http.StatusOK, "Accepted")
}

// FailsafeMembers implements Manager.
func (n *Node) FailsafeMembers() (map[string]string, bool) {
	st := n.Status()
	if st == nil || !st.FailsafeEnabled {
		return nil, false
	}
	if st.Cluster == nil || st.Cluster.Failsafe == nil {
		return map[string]string{}, true
	}
	return st.Cluster.Failsafe, true
}

// snapshotDyn is the dynamic configuration as last published (the bootstrap one before that),
// for the management calls, which do not read the loop's state.
func (n *Node) snapshotDyn() config.Dynamic {
	if st := n.Status(); st != nil {
		return st.dyn
	}
	return n.initialDyn
}
