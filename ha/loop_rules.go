package ha

import (
	"reflect"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/config"
)

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

// SyncGUCReleased: a running replica that is not the leader and runs no long action gives the
// synchronous_standby_names it managed as a primary back to the configuration (a demoted
// primary; while it is promoting or leads, the value it set must stay).
func SyncGUCReleased(v View) bool {
	return v.Local.Running && v.Local.Ready && !v.Local.Primary && v.Job == NoJob && v.Cluster.LeaderName() != v.Me
}

// SyncGUCAdopted: a running primary found with a synchronous mode on, or named by the sync key,
// manages synchronous_standby_names from the value it runs with: writing the configured one
// over it could stop commits waiting for standbys the sync key still names.
func SyncGUCAdopted(v View) bool {
	if !v.Local.Running || !v.Local.Ready || !v.Local.Primary {
		return false
	}
	ownKey := v.Cluster.Sync != nil && strings.EqualFold(v.Cluster.Sync.Leader, v.Me)
	return syncOn(v.Settings) || ownKey
}

// RenewRefused is Decide's lost-leader-key rule as a renewal applies it at once, when the store
// answered that the leader key is not this member's: a running primary tries to take a key that
// merely vanished back (takeBack); otherwise, or when that fails because another member holds
// it, the lease is given up and postgres, if running, is fenced unless the cluster is paused
// (fence).
func RenewRefused(running, ready, primary, paused bool) (takeBack, fence bool) {
	return running && ready && primary, running && !paused
}

// ConfigChange is what adopting a new dynamic configuration asks of the loop beyond keeping it.
type ConfigChange struct {
	SetTTL, SetRetryTimeout bool // hand the new value to the DCS client
	// PauseOn: maintenance mode starts; the watchdog is disabled (nothing may reset the machine
	// while the cluster is left alone).
	PauseOn bool
	// PauseOff: maintenance mode ends; the rejoin checks made while paused are forgotten, as
	// Patroni's sanity checks on resume, since they may no longer hold.
	PauseOff bool
	// RemoteChanged: a standby cluster's remote primary moved (host, port, slot or the recovery
	// settings that come with it): the standby leader follows it again, so that an operator
	// who points the cluster at the primary region's new primary needs no restart.
	RemoteChanged bool
}

// DynamicConfigChange compares the adopted dynamic configuration with the new, valid one.
func DynamicConfigChange(old, cur config.Dynamic) ConfigChange {
	return ConfigChange{
		SetTTL:          cur.TTL != old.TTL,
		SetRetryTimeout: cur.RetryTimeout != old.RetryTimeout,
		PauseOn:         cur.Pause && !old.Pause,
		PauseOff:        !cur.Pause && old.Pause,
		RemoteChanged:   remoteChanged(old, cur),
	}
}

// remoteChanged: both configurations are standby clusters and their remote primaries differ
// (becoming or ceasing to be a standby cluster is Decide's: demote-cluster, promote-cluster).
func remoteChanged(old, cur config.Dynamic) bool {
	a, errA := remoteOf(old)
	b, errB := remoteOf(cur)
	return errA == nil && errB == nil && !reflect.DeepEqual(a, b)
}
