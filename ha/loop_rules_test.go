package ha

import (
	"testing"
	"time"

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
