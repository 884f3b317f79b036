package ha

import (
	"strconv"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

// Status is what the loop publishes after every cycle. The REST API reads the latest one through
// an atomic pointer: health checks never run SQL and never wait for the loop. Never mutated once
// published.
type Status struct {
	Name    string
	Scope   string
	Version string // tusker's version

	// PostgreSQL, as last observed.
	State               string // Patroni's state names: running, starting, stopped, crashed, creating replica, ...
	Role                string // primary, replica, standby_leader, uninitialized, demoted
	StandbyCluster      bool   // standby_cluster is set: the leader is a standby leader
	PostmasterStartTime time.Time
	ServerVersion       int // e.g. 150018
	Timeline            int
	SystemIdentifier    string
	XLogLocation        int64 // primary: pg_current_wal_flush_lsn()
	ReceivedLocation    int64 // replica: last WAL received
	ReplayedLocation    int64 // replica: last WAL replayed
	ReplayedTimestamp   *time.Time
	ReplayPaused        bool
	ReplicationState    string // replica: "streaming" or "in archive recovery"; "" when unknown
	LatestEndLSN        int64  // replica: pg_stat_wal_receiver.latest_end_lsn (the upstream's position); 0 when unknown
	Replication         []Replication
	PendingRestart      bool
	// PendingRestartReason: parameter name -> its running and its configured value.
	PendingRestartReason map[string]PendingChange
	ScheduledRestart     *ScheduledRestart // nil when none is scheduled

	// Cluster, as last read from the DCS.
	IsLeader bool // this member holds the leader key
	// LeaderUntil (while IsLeader) is when the lease runs out unless renewed, less the fence
	// margin: the moment postgres is fenced. A status read after it (the loop stalled, or the
	// process was frozen and just resumed) must not send clients to this member.
	LeaderUntil     time.Time
	ClusterUnlocked bool // nobody holds the leader key (or the DCS is unreachable)
	DCSReachable    bool
	DCSLastSeen     time.Time // last successful DCS read
	Pause           bool
	// FailsafeActive: the DCS is unreachable and failsafe_mode is keeping the cluster up: on the
	// primary, every member in the failsafe key confirmed it; on a replica, the primary's
	// confirmation requests arrived within ttl.
	FailsafeActive  bool
	FailsafeEnabled bool
	// WatchdogFailed: watchdog.mode is required and the device could not be used.
	WatchdogFailed bool
	LeaderOptime   int64 // the leader's WAL position from the status key
	// SyncMode is synchronous_mode from the dynamic configuration: "off", "on" or "quorum".
	// SyncStandby (mode on) and QuorumStandby (mode quorum): this replica is listed in the sync
	// key, so it is known to have every acknowledged commit (on) or counts as a voter (quorum).
	SyncMode      string
	SyncStandby   bool
	QuorumStandby bool
	Cluster       *dcs.Cluster

	Tags map[string]any

	// Limits from the dynamic configuration, for health checks that need them.
	TTL                  time.Duration
	MaximumLagOnFailover int64

	LastLoop time.Time // when the HA loop last completed a cycle

	// For the management calls, which read the loop's state only through this snapshot: the
	// leader key's holder last seen and the dynamic configuration applied.
	lastLeader string
	dyn        config.Dynamic
}

// Leading says whether the member counts as the leader at now: it holds the key and its lease
// has not run out (a zero LeaderUntil sets no deadline).
func (st *Status) Leading(now time.Time) bool {
	return st.IsLeader && (st.LeaderUntil.IsZero() || now.Before(st.LeaderUntil))
}

// Alive is Patroni's /liveness rule, which the systemd watchdog follows too: the HA loop completed
// a cycle within ttl (2*ttl unless this member runs as primary), or the cluster is paused.
func (st *Status) Alive(now time.Time) bool {
	if st.Pause {
		return true
	}
	ttl := st.TTL
	if ttl <= 0 {
		ttl = 30 * time.Second // Patroni's default
	}
	if st.Role != "primary" || st.State != "running" {
		ttl *= 2
	}
	return !st.LastLoop.IsZero() && now.Sub(st.LastLoop) < ttl
}

// Replication is one row of pg_stat_replication.
type Replication struct {
	Usename         string `json:"usename"`
	ApplicationName string `json:"application_name"`
	ClientAddr      string `json:"client_addr"`
	State           string `json:"state"`
	SyncState       string `json:"sync_state"`
	SyncPriority    int    `json:"sync_priority"`
}

// PendingChange is one parameter whose new value needs a restart.
type PendingChange = dcs.ParamChange

// ScheduledRestart is a restart requested for later through POST /restart.
type ScheduledRestart struct {
	Schedule        time.Time
	Role            string
	PostgresVersion int
	RestartPending  bool
}

// Member is the scheduled restart as Patroni publishes it in the member key and /patroni.
func (r *ScheduledRestart) Member() *dcs.ScheduledRestart {
	if r == nil {
		return nil
	}
	return &dcs.ScheduledRestart{Schedule: dcs.ISOTime(r.Schedule), PostgresVersion: FormatPostgresVersion(r.PostgresVersion),
		Role: r.Role, RestartPending: r.RestartPending}
}

// FormatPostgresVersion turns server_version_num into the version as people write it: 150003
// is "15.3", 90601 is "9.6.1"; 0 is "".
func FormatPostgresVersion(v int) string {
	switch {
	case v <= 0:
		return ""
	case v >= 100000:
		return strconv.Itoa(v/10000) + "." + strconv.Itoa(v%10000)
	}
	return strconv.Itoa(v/10000) + "." + strconv.Itoa(v/100%100) + "." + strconv.Itoa(v%100)
}
