package ha

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
