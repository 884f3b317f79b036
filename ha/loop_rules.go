package ha

import "time"

// The loop's decisions that are not Decide's plan but are still policy: pure functions of what
// the loop observed, each with its rule test (loop_rules_test.go), so that the loop itself only
// gathers inputs and carries the answers out.

// HandoverBackoff is whether releasing the leader key this cycle is a crashed primary handing
// over: its data directory is valid but postgres is not running, and the cluster is not paused.
// It then stays down (does not race for the key) for a ttl, until somebody else leads, so that a
// healthy replica takes over instead of the member whose postgres just failed (Decide's
// crash-handover rule reads View.RaceBackoffUntil).
func HandoverBackoff(v View) bool {
	return v.Local.DataDir == DataDirValid && !v.Local.Running && !v.Settings.Pause
}

// ScheduledRestartDue is whether a scheduled restart (POST /restart with "schedule") runs now:
// it is set (at not zero) and due, no long action is running, and the cluster is not paused
// (Patroni runs no scheduled action in maintenance mode).
func ScheduledRestartDue(at, now time.Time, busy, paused bool) bool {
	return !at.IsZero() && !now.Before(at) && !busy && !paused
}

// RunAgainNow: right after taking or giving up the lock, or changing synchronous replication, the
// next cycle runs at once instead of after loop_wait (a promotion must not wait a loop).
func RunAgainNow(p Plan) bool {
	return p.Has(AcquireLeader) || p.Has(ReleaseLeader) || p.Has(Fence) || p.Has(Bootstrap) ||
		p.Has(WriteSyncKey) || p.Has(SetSyncGUC) || p.Has(DeleteSyncKey)
}

// NextCycleWait is how long the loop sleeps after a cycle that started at start: loop_wait from
// then, less if the plan or a scheduled restart asks for a cycle earlier, and never under 10 ms.
func NextCycleWait(loopWait time.Duration, start, now, wakeAt, restartAt time.Time) time.Duration {
	wait := loopWait - now.Sub(start)
	if !wakeAt.IsZero() {
		wait = min(wait, wakeAt.Sub(now))
	}
	if !restartAt.IsZero() {
		wait = min(wait, restartAt.Sub(now))
	}
	return max(wait, 10*time.Millisecond)
}
