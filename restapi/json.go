package restapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/patroni"
)

// snapshot holds the response bodies for one published Status. /patroni (the body of every GET
// health check) is built eagerly, /cluster and /history on first use.
type snapshot struct {
	st         *ha.Status
	patroni    []byte
	patroniLen []string // Content-Length header value, shared by every response

	clusterOnce sync.Once
	cluster     []byte
	clusterLen  []string

	historyOnce sync.Once
	history     []byte
	historyLen  []string
}

func (s *Server) newSnapshot(st *ha.Status) *snapshot {
	body := s.patroniBody(st)
	return &snapshot{st: st, patroni: body, patroniLen: contentLength(body)}
}

func (s *Server) clusterBody(snap *snapshot) ([]byte, []string) {
	snap.clusterOnce.Do(func() {
		snap.cluster = s.buildCluster(snap.st)
		snap.clusterLen = contentLength(snap.cluster)
	})
	return snap.cluster, snap.clusterLen
}

func (s *Server) historyBody(snap *snapshot) ([]byte, []string) {
	snap.historyOnce.Do(func() {
		snap.history = s.buildHistory(snap.st)
		snap.historyLen = contentLength(snap.history)
	})
	return snap.history, snap.historyLen
}

func contentLength(b []byte) []string { return []string{strconv.Itoa(len(b))} }

// patroniStatus is the /patroni body, field for field and in the order Patroni writes it.
type patroniStatus struct {
	State               string                      `json:"state"`
	PostmasterStartTime string                      `json:"postmaster_start_time,omitempty"`
	Role                string                      `json:"role"`
	ServerVersion       int                         `json:"server_version,omitempty"`
	XLog                any                         `json:"xlog,omitempty"` // *xlogPrimary or *xlogReplica
	QuorumStandby       bool                        `json:"quorum_standby,omitempty"`
	SyncStandby         bool                        `json:"sync_standby,omitempty"`
	Timeline            int                         `json:"timeline,omitempty"`
	ReplicationState    string                      `json:"replication_state,omitempty"`
	Replication         []replication               `json:"replication,omitempty"`
	Pause               bool                        `json:"pause,omitempty"`
	ClusterUnlocked     bool                        `json:"cluster_unlocked,omitempty"`
	FailsafeActive      bool                        `json:"failsafe_mode_is_active,omitempty"`
	DCSLastSeen         int64                       `json:"dcs_last_seen"`
	Tags                map[string]any              `json:"tags,omitempty"`
	SystemIdentifier    string                      `json:"database_system_identifier,omitempty"`
	PendingRestart      bool                        `json:"pending_restart,omitempty"`
	PendingReason       map[string]ha.PendingChange `json:"pending_restart_reason,omitempty"`
	Patroni             patroniInfo                 `json:"patroni"`
	ScheduledRestart    *dcs.ScheduledRestart       `json:"scheduled_restart,omitempty"`
	WatchdogFailed      bool                        `json:"watchdog_failed,omitempty"`
}

type patroniInfo struct {
	Version string `json:"version"`
	Scope   string `json:"scope"`
	Name    string `json:"name"`
}

type xlogPrimary struct {
	Location int64 `json:"location"`
}

type xlogReplica struct {
	ReceivedLocation  int64   `json:"received_location"`
	ReplayedLocation  int64   `json:"replayed_location"`
	ReplayedTimestamp *string `json:"replayed_timestamp"` // null when nothing was replayed yet
	Paused            bool    `json:"paused"`
}

// replication is one wal sender; client_addr is null for a Unix-socket connection, as in Patroni.
type replication struct {
	Usename         string  `json:"usename"`
	ApplicationName string  `json:"application_name"`
	ClientAddr      *string `json:"client_addr"`
	State           string  `json:"state"`
	SyncState       string  `json:"sync_state"`
	SyncPriority    int     `json:"sync_priority"`
}

// postgresAnswered reports whether the Status carries the values of a successful status query.
// Patroni only shows them while Postgres is running, starting or restarting and the query worked;
// otherwise the body has state and role only.
func postgresAnswered(st *ha.Status) bool {
	switch st.State {
	case "running", "starting", "restarting":
		return !st.PostmasterStartTime.IsZero()
	}
	return false
}

// receivedLocation is Patroni's xlog.received_location: the received position, or the replayed
// one when nothing was received (archive recovery).
func receivedLocation(st *ha.Status) int64 {
	if st.ReceivedLocation != 0 {
		return st.ReceivedLocation
	}
	return st.ReplayedLocation
}

func (s *Server) patroniBody(st *ha.Status) []byte {
	if st == nil {
		return mustJSON(patroniStatus{
			State:           "starting",
			Role:            "uninitialized",
			ClusterUnlocked: true,
			Patroni:         patroniInfo{Version: s.cfg.Version, Scope: s.cfg.Scope, Name: s.cfg.Name},
		})
	}
	p := patroniStatus{
		State:            st.State,
		Role:             st.Role,
		Pause:            st.Pause,
		ClusterUnlocked:  st.ClusterUnlocked,
		SystemIdentifier: st.SystemIdentifier,
		PendingRestart:   st.PendingRestart || len(st.PendingRestartReason) > 0,
		FailsafeActive:   st.FailsafeActive,
		WatchdogFailed:   st.WatchdogFailed,
		Patroni:          patroniInfo{Version: st.Version, Scope: st.Scope, Name: st.Name},
	}
	if len(st.PendingRestartReason) > 0 {
		p.PendingReason = st.PendingRestartReason
	}
	if sr := st.ScheduledRestart; sr != nil {
		p.ScheduledRestart = sr.Member()
	}
	if !st.DCSLastSeen.IsZero() {
		p.DCSLastSeen = st.DCSLastSeen.Unix()
	}
	if len(st.Tags) > 0 {
		p.Tags = st.Tags
	}
	if postgresAnswered(st) {
		p.PostmasterStartTime = pyTime(st.PostmasterStartTime)
		p.ServerVersion = st.ServerVersion
		p.Timeline = st.Timeline
		if st.Role == "primary" {
			p.XLog = &xlogPrimary{Location: st.XLogLocation}
		} else {
			x := &xlogReplica{
				ReceivedLocation: receivedLocation(st),
				ReplayedLocation: st.ReplayedLocation,
				Paused:           st.ReplayPaused,
			}
			if st.ReplayedTimestamp != nil && !st.ReplayedTimestamp.IsZero() {
				ts := pyTime(*st.ReplayedTimestamp)
				x.ReplayedTimestamp = &ts
			}
			p.XLog = x
			p.ReplicationState = st.ReplicationState
			// Listed in the sync key: Patroni says so with the rest of what Postgres answered.
			p.SyncStandby, p.QuorumStandby = st.SyncStandby, st.QuorumStandby
		}
		for _, r := range st.Replication {
			rr := replication{
				Usename:         r.Usename,
				ApplicationName: r.ApplicationName,
				State:           r.State,
				SyncState:       r.SyncState,
				SyncPriority:    r.SyncPriority,
			}
			if r.ClientAddr != "" {
				addr := r.ClientAddr
				rr.ClientAddr = &addr
			}
			p.Replication = append(p.Replication, rr)
		}
	}
	b, err := marshal(p)
	if err != nil {
		// Only tags can hold values JSON cannot encode; answer without them rather than not at all.
		s.log.Error("cannot encode /patroni body, leaving out tags", "err", err)
		p.Tags = nil
		b = mustJSON(p)
	}
	return b
}

// clusterStatus is the /cluster body.
type clusterStatus struct {
	Members             []clusterMember      `json:"members"`
	Pause               bool                 `json:"pause,omitempty"`
	ScheduledSwitchover *scheduledSwitchover `json:"scheduled_switchover,omitempty"`
	Scope               string               `json:"scope"`
}

type scheduledSwitchover struct {
	At   string `json:"at"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// clusterMember is one member of /cluster; the LSN fields hold a "X/X" string or "unknown", the
// lag fields a number of bytes or "unknown", and all six are absent for the leader.
type clusterMember struct {
	Name           string                     `json:"name"`
	Role           string                     `json:"role"`
	State          string                     `json:"state"`
	APIURL         *string                    `json:"api_url"`
	Host           string                     `json:"host,omitempty"`
	Port           int                        `json:"port,omitempty"`
	Timeline       int                        `json:"timeline,omitempty"`
	PendingRestart bool                       `json:"pending_restart,omitempty"`
	PendingReason  map[string]dcs.ParamChange `json:"pending_restart_reason,omitempty"`
	Scheduled      *dcs.ScheduledRestart      `json:"scheduled_restart,omitempty"`
	Tags           map[string]any             `json:"tags,omitempty"`
	ReceiveLSN     any                        `json:"receive_lsn,omitempty"`
	ReceiveLag     any                        `json:"receive_lag,omitempty"`
	ReplayLSN      any                        `json:"replay_lsn,omitempty"`
	ReplayLag      any                        `json:"replay_lag,omitempty"`
	LSN            any                        `json:"lsn,omitempty"`
	Lag            any                        `json:"lag,omitempty"`
}

func (s *Server) buildCluster(st *ha.Status) []byte {
	out := clusterStatus{Members: []clusterMember{}, Scope: s.cfg.Scope}
	if st != nil {
		out.Scope = st.Scope
		out.Pause = st.Pause
	}
	var c *dcs.Cluster
	if st != nil {
		c = st.Cluster
	}
	if c != nil {
		leader := c.LeaderName()
		optime := c.Status.Optime
		syncRole := ""
		switch st.SyncMode {
		case "on":
			syncRole = "sync_standby"
		case "quorum":
			syncRole = "quorum_standby"
		}
		for _, m := range c.Members {
			cm := clusterMember{Name: m.Name, Role: "replica", State: m.Data.State}
			if m.Name == leader {
				cm.Role = "leader"
			} else {
				if syncRole != "" && c.Sync.Has(m.Name) {
					cm.Role = syncRole
				}
				if m.Data.ReplicationState != "" {
					cm.State = m.Data.ReplicationState
				}
			}
			if m.Data.APIURL != "" {
				u := m.Data.APIURL
				cm.APIURL = &u
			}
			cm.Host, cm.Port = connHostPort(m.Data.ConnURL)
			cm.Timeline = m.Data.Timeline
			cm.PendingRestart = m.Data.PendingRestart
			cm.PendingReason, cm.Scheduled = m.Data.PendingRestartReason, m.Data.ScheduledRestart
			if len(m.Data.Tags) > 0 {
				cm.Tags = m.Data.Tags
			}
			if m.Name != leader {
				cm.ReceiveLSN, cm.ReceiveLag = lsnAndLag(m.Data.ReceiveLSN, optime)
				cm.ReplayLSN, cm.ReplayLag = lsnAndLag(m.Data.ReplayLSN, optime)
				cm.LSN, cm.Lag = lsnAndLag(m.Data.XLogLocation, optime)
			}
			out.Members = append(out.Members, cm)
		}
		slices.SortStableFunc(out.Members, func(a, b clusterMember) int { return cmp.Compare(a.Name, b.Name) })
		if f := c.Failover; f != nil && f.ScheduledAt != nil {
			out.ScheduledSwitchover = &scheduledSwitchover{At: pyISOTime(*f.ScheduledAt), From: f.Leader, To: f.Member}
		}
	}
	b, err := marshal(out)
	if err != nil {
		s.log.Error("cannot encode /cluster body, leaving out tags", "err", err)
		for i := range out.Members {
			out.Members[i].Tags = nil
		}
		b = mustJSON(out)
	}
	return b
}

func (s *Server) buildHistory(st *ha.Status) []byte {
	if st == nil || st.Cluster == nil || len(st.Cluster.History) == 0 {
		return []byte("[]")
	}
	b, err := marshal(st.Cluster.History)
	if err != nil {
		s.log.Error("cannot encode /history body", "err", err)
		return []byte("[]")
	}
	return b
}

// lsnAndLag is Patroni's pair for one position of a member: "unknown" twice when the member did
// not publish it (or published 0), else the position as "X/X" and its lag behind the leader's
// optime in bytes (0 when ahead).
func lsnAndLag(lsn *int64, optime int64) (any, any) {
	if lsn == nil || *lsn == 0 {
		return "unknown", "unknown"
	}
	return patroni.FormatLSN(*lsn), max(optime-*lsn, 0)
}

// connHostPort is a member's host and port for the cluster payloads (Patroni's rules, package
// patroni): nothing without a host, port 0 when it is not a port.
func connHostPort(connURL string) (string, int) {
	h, p, _ := patroni.ConnHostPort(connURL)
	return h, p
}

// pyTime formats like Python's str(datetime) on an aware datetime, which is how Patroni writes
// postmaster_start_time and replayed_timestamp: "2024-01-02 15:04:05.123456+00:00", without the
// fraction when it is zero.
func pyTime(t time.Time) string {
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05-07:00")
	}
	return t.Format("2006-01-02 15:04:05.000000-07:00")
}

// pyISOTime formats like Python's datetime.isoformat().
func pyISOTime(t time.Time) string { return dcs.ISOTime(t) }

// marshal encodes v without HTML escaping (Patroni writes "<" and "&" as they are).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func mustJSON(v any) []byte {
	b, err := marshal(v)
	if err != nil {
		panic(fmt.Sprintf("restapi: encoding %T: %v", v, err)) // only fixed types without tags get here
	}
	return b
}
