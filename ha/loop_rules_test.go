package ha

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

func TestRuleHandoverBackoff(t *testing.T) {
	v := leaderView("a", Local{DataDir: DataDirValid})
	require.True(t, HandoverBackoff(v), "a stopped primary with a valid data directory hands over and stays down")
	v.Local.Running = true
	require.False(t, HandoverBackoff(v), "a running postgres is not a crash")
	v.Local.Running = false
	v.Settings.Pause = true
	require.False(t, HandoverBackoff(v), "paused: nobody races anyway")
	v.Settings.Pause = false
	v.Local.DataDir = DataDirEmpty
	require.False(t, HandoverBackoff(v), "no data directory: nothing crashed")
}

func TestRuleScheduledRestartDue(t *testing.T) {
	at := t0.Add(time.Minute)
	require.False(t, ScheduledRestartDue(time.Time{}, t0, false, false), "nothing scheduled")
	require.False(t, ScheduledRestartDue(at, t0, false, false), "not yet")
	require.True(t, ScheduledRestartDue(at, at, false, false), "due")
	require.True(t, ScheduledRestartDue(at, at.Add(time.Hour), false, false), "overdue runs too")
	require.False(t, ScheduledRestartDue(at, at, true, false), "a long action is running: later")
	require.False(t, ScheduledRestartDue(at, at, false, true), "paused: not while in maintenance")
}

func TestRuleRunAgainNow(t *testing.T) {
	for _, k := range []Kind{AcquireLeader, ReleaseLeader, Fence, Bootstrap, WriteSyncKey, SetSyncGUC, DeleteSyncKey} {
		assert.True(t, RunAgainNow(plan("x", act(RenewLeader), act(k))), k.String())
	}
	for _, k := range []Kind{RenewLeader, Promote, StartReplica, Clone, ClearFailover} {
		assert.False(t, RunAgainNow(plan("x", act(k))), k.String())
	}
	assert.False(t, RunAgainNow(Plan{}))
}

func TestRuleNextCycleWait(t *testing.T) {
	lw := 10 * time.Second
	// loop_wait counts from the start of the cycle, not its end.
	assert.Equal(t, 7*time.Second, NextCycleWait(lw, t0, t0.Add(3*time.Second), time.Time{}, time.Time{}))
	// A plan's WakeAt and a scheduled restart shorten it, whichever is first.
	assert.Equal(t, 2*time.Second, NextCycleWait(lw, t0, t0, t0.Add(2*time.Second), t0.Add(5*time.Second)))
	assert.Equal(t, time.Second, NextCycleWait(lw, t0, t0, t0.Add(4*time.Second), t0.Add(time.Second)))
	// Never below 10 ms: a cycle that overran loop_wait or a time already past does not spin.
	assert.Equal(t, 10*time.Millisecond, NextCycleWait(lw, t0, t0.Add(11*time.Second), time.Time{}, time.Time{}))
	assert.Equal(t, 10*time.Millisecond, NextCycleWait(lw, t0, t0, t0.Add(-time.Second), time.Time{}))
}

func TestRuleSyncGUCReleased(t *testing.T) {
	v := leaderView("b", Local{DataDir: DataDirValid, Running: true, Ready: true})
	v.Cluster.Leader = &dcs.Leader{Name: "a"}
	require.True(t, SyncGUCReleased(v), "a running replica of another leader gives the value back")
	w := v
	w.Job = JobPromote
	require.False(t, SyncGUCReleased(w), "not while it is being promoted: the value it set must stay")
	w = v
	w.Cluster = &dcs.Cluster{Leader: &dcs.Leader{Name: "b"}}
	require.False(t, SyncGUCReleased(w), "not while it holds the leader key (a promotion under way)")
	w = v
	w.Local.Primary = true
	require.False(t, SyncGUCReleased(w), "a primary keeps it")
	w = v
	w.Local.Ready = false
	require.False(t, SyncGUCReleased(w), "not from a postgres that did not answer")
}

func TestRuleSyncGUCAdopted(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	require.False(t, SyncGUCAdopted(v), "asynchronous, no sync key: the configured value, nothing to manage")
	v.Settings.SyncMode = "on"
	require.True(t, SyncGUCAdopted(v), "synchronous mode on")
	v.Settings.SyncMode = "quorum"
	require.True(t, SyncGUCAdopted(v), "quorum mode")
	v.Settings.SyncMode = "off"
	v.Cluster.Sync = &dcs.Sync{Leader: "A"}
	require.True(t, SyncGUCAdopted(v), "a sync key of its own (names compare case-insensitively), left from a mode just turned off")
	v.Cluster.Sync = &dcs.Sync{Leader: "b"}
	require.False(t, SyncGUCAdopted(v), "another leader's sync key")
	v.Settings.SyncMode = "on"
	v.Local.Primary = false
	require.False(t, SyncGUCAdopted(v), "only a running primary")
}

func TestRuleRenewRefused(t *testing.T) {
	takeBack, fence := RenewRefused(true, true, true, false)
	require.True(t, takeBack, "a running primary takes a vanished key back")
	require.True(t, fence, "and fences if that fails")
	takeBack, fence = RenewRefused(true, true, false, false)
	require.False(t, takeBack, "a standby has nothing to take back")
	require.True(t, fence)
	takeBack, _ = RenewRefused(true, false, true, false)
	require.False(t, takeBack, "a postgres that did not answer is not known to be primary")
	_, fence = RenewRefused(true, true, true, true)
	require.False(t, fence, "paused: postgres is left alone")
	takeBack, fence = RenewRefused(false, false, false, false)
	require.False(t, takeBack)
	require.False(t, fence, "nothing runs: nothing to fence")
}

func TestRuleDynamicConfigChange(t *testing.T) {
	old := config.DefaultDynamic()
	assert.Equal(t, ConfigChange{}, DynamicConfigChange(old, old), "the same configuration asks for nothing")
	cur := old
	cur.TTL, cur.LoopWait = 30, 10
	assert.Equal(t, ConfigChange{SetTTL: true}, DynamicConfigChange(old, cur), "loop_wait is read each cycle")
	cur = old
	cur.RetryTimeout = 3
	assert.Equal(t, ConfigChange{SetRetryTimeout: true}, DynamicConfigChange(old, cur))
	cur = old
	cur.Pause = true
	assert.Equal(t, ConfigChange{PauseOn: true}, DynamicConfigChange(old, cur))
	assert.Equal(t, ConfigChange{PauseOff: true}, DynamicConfigChange(cur, old))
	assert.Equal(t, ConfigChange{}, DynamicConfigChange(cur, cur), "staying paused changes nothing")

	standby := func(host string, port int, restore string) config.Dynamic {
		d := config.DefaultDynamic()
		d.StandbyCluster = &config.StandbyCluster{Host: host, Port: port, RestoreCommand: restore}
		return d
	}
	a := standby("10.0.0.1", 5432, "")
	assert.Equal(t, ConfigChange{}, DynamicConfigChange(a, standby("10.0.0.1", 5432, "")))
	assert.Equal(t, ConfigChange{RemoteChanged: true}, DynamicConfigChange(a, standby("10.0.0.2", 5432, "")), "the host moved")
	assert.Equal(t, ConfigChange{RemoteChanged: true}, DynamicConfigChange(a, standby("10.0.0.1", 5433, "")), "the port")
	assert.Equal(t, ConfigChange{RemoteChanged: true}, DynamicConfigChange(a, standby("10.0.0.1", 5432, "cp %f %p")), "restore_command")
	assert.Equal(t, ConfigChange{}, DynamicConfigChange(old, a), "demote-cluster is Decide's")
	assert.Equal(t, ConfigChange{}, DynamicConfigChange(a, old), "promote-cluster too")
}

func TestRuleReplicaMethods(t *testing.T) {
	names := func(ms []config.ReplicaMethod) (out []string) {
		for _, m := range ms {
			out = append(out, m.Name)
		}
		return out
	}
	assert.Equal(t, []string{"basebackup"}, names(ReplicaMethods(nil, true)), "none configured: basebackup")
	assert.Empty(t, ReplicaMethods(nil, false), "basebackup needs a leader")
	configured := []config.ReplicaMethod{{Name: "pgbackrest", NoLeader: true}, {Name: "walg"}, {Name: "basebackup", NoLeader: true}}
	assert.Equal(t, []string{"pgbackrest", "walg", "basebackup"}, names(ReplicaMethods(configured, true)), "in order")
	assert.Equal(t, []string{"pgbackrest"}, names(ReplicaMethods(configured, false)), "no leader: only no_leader methods")
}

func TestRuleRemoveBeforeClone(t *testing.T) {
	keep := []config.ReplicaMethod{{Name: "pgbackrest", KeepData: true}, {Name: "basebackup"}}
	assert.False(t, RemoveBeforeClone(keep, true), "a keep_data first method gets the old directory")
	assert.True(t, RemoveBeforeClone(keep[1:], true))
	assert.True(t, RemoveBeforeClone(nil, true))
	assert.False(t, RemoveBeforeClone(nil, false), "a new replica's directory is empty already")
}
