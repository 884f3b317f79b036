// Package dcs defines the distributed configuration store that tusker keeps its cluster state in:
// the backend interface, the immutable Cluster snapshot it returns, and Patroni's key layout and
// JSON values, so that Patroni tools read a tusker cluster and the other way round.
package dcs

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors a caller branches on. Backends wrap them with the operation and the key.
var (
	// ErrUnreachable: the store did not answer within the call's deadline (retry_timeout).
	ErrUnreachable = errors.New("dcs unreachable")
	// ErrConflict: a compare-and-swap lost against a concurrent writer.
	ErrConflict = errors.New("dcs compare-and-swap conflict")
	// ErrNotLeader: the leader key is not held by this member (any more).
	ErrNotLeader = errors.New("leader key not held by this member")
)

// DCS is one cluster's view of a store; a backend value is bound to namespace, scope and member name.
// Every method is bounded by the context and by the backend's own retry_timeout, whichever is first.
type DCS interface {
	// Cluster reads the whole cluster state in one consistent read.
	Cluster(ctx context.Context) (*Cluster, error)

	// Initialize creates the initialize key with value when it is absent (create=true) and says
	// whether this member won the race; with create=false it overwrites the value (the system
	// identifier after a successful bootstrap).
	Initialize(ctx context.Context, value string, create bool) (bool, error)
	// CancelInitialize removes the initialize key after a failed bootstrap.
	CancelInitialize(ctx context.Context) error

	// AcquireLeader takes the leader key if nobody holds it, bound to this member's lease.
	AcquireLeader(ctx context.Context) (bool, error)
	// RenewLeader extends this member's lease and confirms it still holds the leader key.
	// It returns ErrNotLeader when the key is gone or held by another member. The caller takes the
	// time before the call as the start of the renewed lease (the server counts from later).
	RenewLeader(ctx context.Context) error
	// ReleaseLeader deletes the leader key if this member holds it.
	ReleaseLeader(ctx context.Context) error

	// TouchMember writes this member's key (bound to its lease) and keeps the lease alive.
	TouchMember(ctx context.Context, data MemberData) error
	// DeleteMember removes this member's key and revokes its lease (clean shutdown).
	DeleteMember(ctx context.Context) error

	// SetConfig writes the config key: create-if-absent when version is 0, CAS on version otherwise,
	// unconditional when version is -1. A lost CAS returns ErrConflict.
	SetConfig(ctx context.Context, value []byte, version int64) error
	// SetStatus writes the status key (leader only).
	SetStatus(ctx context.Context, st Status) error
	// SetHistory writes the history key (leader only).
	SetHistory(ctx context.Context, h []HistoryEntry) error
	// SetFailover writes the failover key (CAS like SetConfig); DeleteFailover removes it.
	SetFailover(ctx context.Context, f Failover, version int64) error
	DeleteFailover(ctx context.Context) error
	// SetSync writes the sync key (CAS like SetConfig); DeleteSync removes it.
	SetSync(ctx context.Context, s Sync, version int64) error
	DeleteSync(ctx context.Context) error
	// SetFailsafe writes the failsafe key ({member: api_url}); nil deletes it.
	SetFailsafe(ctx context.Context, members map[string]string) error

	// DeleteCluster removes every key of the cluster (tuskerctl remove).
	DeleteCluster(ctx context.Context) error

	// SetTTL changes the lease duration for the following lease grants and renewals.
	SetTTL(ttl time.Duration)
	// SetRetryTimeout changes the bound on each following call.
	SetRetryTimeout(d time.Duration)
	// Changes is signalled (never blocking, coalesced) when the leader, failover or config key
	// changes, so that the loop reacts at once instead of on its next tick.
	Changes() <-chan struct{}
	// Close stops the backend's goroutines and revokes nothing.
	Close() error
}

// Cluster is one consistent snapshot of the cluster's keys. It is never mutated after it is built.
type Cluster struct {
	Initialize *string // nil: key absent; "": a bootstrap is in progress; else the system identifier
	Config     *ConfigKey
	Leader     *Leader
	Members    []Member // sorted by name
	Failover   *Failover
	Status     Status
	History    []HistoryEntry
	Failsafe   map[string]string // the failsafe key: member name -> api_url; nil when absent
	Sync       *Sync             // the sync key; nil when absent
	// Invalid lists keys whose values could not be parsed; they were skipped.
	Invalid []string
}

// Member returns the named member, or nil.
func (c *Cluster) Member(name string) *Member {
	if c == nil {
		return nil
	}
	for i := range c.Members {
		if c.Members[i].Name == name {
			return &c.Members[i]
		}
	}
	return nil
}

// LeaderName is the leader's name, or "".
func (c *Cluster) LeaderName() string {
	if c == nil || c.Leader == nil {
		return ""
	}
	return c.Leader.Name
}

// ConfigKey is the config key: the dynamic configuration as JSON.
type ConfigKey struct {
	Value   []byte
	Version int64
}

// Leader is the leader key.
type Leader struct {
	Name    string
	Version int64
}

// Member is one members/<name> key.
type Member struct {
	Name    string
	Data    MemberData
	Version int64
}

// MemberData is the JSON value of a member key, field for field as Patroni writes it.
type MemberData struct {
	ConnURL          string         `json:"conn_url,omitempty"`
	APIURL           string         `json:"api_url,omitempty"`
	State            string         `json:"state,omitempty"`
	Role             string         `json:"role,omitempty"`
	Version          string         `json:"version,omitempty"`
	XLogLocation     *int64         `json:"xlog_location,omitempty"`
	ReceiveLSN       *int64         `json:"receive_lsn,omitempty"`
	ReplayLSN        *int64         `json:"replay_lsn,omitempty"`
	ReplicationState string         `json:"replication_state,omitempty"`
	Timeline         int            `json:"timeline,omitempty"`
	Tags             map[string]any `json:"tags,omitempty"`
	PendingRestart   bool           `json:"pending_restart,omitempty"`
	// PendingRestartReason: parameter -> its running and configured value (Patroni 4's field).
	PendingRestartReason map[string]ParamChange `json:"pending_restart_reason,omitempty"`
	ScheduledRestart     *ScheduledRestart      `json:"scheduled_restart,omitempty"`
	Pause                bool                   `json:"pause,omitempty"`
	// CheckpointAfterPromote is false on a new primary until its post-promote checkpoint is done;
	// pg_rewind against it must wait for true (Patroni's checkpoint_after_promote).
	CheckpointAfterPromote *bool `json:"checkpoint_after_promote,omitempty"`
}

// ParamChange is one parameter waiting for a restart: the value postgres runs with and the one
// configured.
type ParamChange struct {
	OldValue string `json:"old_value"`
	NewValue string `json:"new_value"`
}

// ScheduledRestart is a restart scheduled through POST /restart, as published in the member key
// and in /patroni.
type ScheduledRestart struct {
	Schedule        string `json:"schedule"` // ISO 8601 (ISOTime)
	PostgresVersion string `json:"postgres_version,omitempty"`
	Role            string `json:"role,omitempty"`
	RestartPending  bool   `json:"restart_pending,omitempty"`
}

// ISOTime formats t as Python's isoformat() does, which is how Patroni writes times in the DCS
// and in its REST API: microseconds only when there are any, and a numeric UTC offset.
func ISOTime(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05-07:00")
	}
	return t.Format("2006-01-02T15:04:05.000000-07:00")
}

// Failover is the failover key: a requested switchover (Leader set) or failover (only Member).
type Failover struct {
	Leader      string     `json:"leader,omitempty"`
	Member      string     `json:"member,omitempty"`
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	Version     int64      `json:"-"`
}

// Sync is the sync key the primary keeps in synchronous modes: who the primary was when it was
// written, the members that are (or may be, in quorum mode) synchronous, and the quorum.
type Sync struct {
	Leader      string   `json:"-"`
	SyncStandby []string `json:"-"` // Patroni writes them comma-separated, or null
	Quorum      int      `json:"-"`
	Version     int64    `json:"-"`
}

// Has reports whether name is listed as a synchronous (or quorum) standby; member names compare
// case-insensitively, as in Patroni. A nil Sync lists nobody.
func (s *Sync) Has(name string) bool {
	if s == nil || name == "" {
		return false
	}
	for _, m := range s.SyncStandby {
		if strings.EqualFold(m, name) {
			return true
		}
	}
	return false
}

// Status is the status key the leader writes: its WAL position and slot positions.
type Status struct {
	Optime      int64            `json:"optime"`
	Slots       map[string]int64 `json:"slots,omitempty"`
	RetainSlots []string         `json:"retain_slots,omitempty"`
}

// HistoryEntry is one line of the history key: [timeline, lsn, reason, timestamp, new_leader].
type HistoryEntry struct {
	Timeline  int
	LSN       int64
	Reason    string
	Timestamp string
	NewLeader string
}
