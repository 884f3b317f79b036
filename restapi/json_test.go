package restapi

import (
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/patroni"
)

func TestPatroniJSON(t *testing.T) {
	paused := replica()
	paused.Pause = true
	paused.ClusterUnlocked = true
	paused.PendingRestart = true
	paused.Tags = map[string]any{"zone": "a", "nofailover": true, "note": "a<b&c"}
	paused.ReplayPaused = true

	archive := replica()
	archive.ReceivedLocation = 0
	archive.ReplayedLocation = 100
	archive.ReplayedTimestamp = nil
	archive.ReplicationState = "in archive recovery"
	archive.DCSLastSeen = time.Time{}

	tests := []struct {
		name string
		st   *ha.Status
		want string
	}{
		{"primary", primary(), `{
			"state": "running",
			"postmaster_start_time": "2024-01-02 14:00:00.352526+00:00",
			"role": "primary",
			"server_version": 160004,
			"xlog": {"location": 67395656},
			"timeline": 2,
			"replication": [
				{"usename": "replicator", "application_name": "n2", "client_addr": "10.0.0.2", "state": "streaming", "sync_state": "async", "sync_priority": 0},
				{"usename": "replicator", "application_name": "n3", "client_addr": null, "state": "streaming", "sync_state": "async", "sync_priority": 0}
			],
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n1"}
		}`},
		{"replica", replica(), `{
			"state": "running",
			"postmaster_start_time": "2024-01-02 14:00:00+00:00",
			"role": "replica",
			"server_version": 160004,
			"xlog": {"received_location": 67395656, "replayed_location": 67395656, "replayed_timestamp": "2024-01-02 17:04:00.500000+02:00", "paused": false},
			"timeline": 2,
			"replication_state": "streaming",
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n2"}
		}`},
		{"paused, unlocked, tags, pending restart", paused, `{
			"state": "running",
			"postmaster_start_time": "2024-01-02 14:00:00+00:00",
			"role": "replica",
			"server_version": 160004,
			"xlog": {"received_location": 67395656, "replayed_location": 67395656, "replayed_timestamp": "2024-01-02 17:04:00.500000+02:00", "paused": true},
			"timeline": 2,
			"replication_state": "streaming",
			"pause": true,
			"cluster_unlocked": true,
			"dcs_last_seen": 1704207845,
			"tags": {"nofailover": true, "note": "a<b&c", "zone": "a"},
			"database_system_identifier": "7408277255830290455",
			"pending_restart": true,
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n2"}
		}`},
		{"archive recovery, DCS never seen", archive, `{
			"state": "running",
			"postmaster_start_time": "2024-01-02 14:00:00+00:00",
			"role": "replica",
			"server_version": 160004,
			"xlog": {"received_location": 100, "replayed_location": 100, "replayed_timestamp": null, "paused": false},
			"timeline": 2,
			"replication_state": "in archive recovery",
			"dcs_last_seen": 0,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n2"}
		}`},
		{"stopped", stopped(), `{
			"state": "stopped",
			"role": "primary",
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n1"}
		}`},
		{"nothing published yet", nil, `{
			"state": "starting",
			"role": "uninitialized",
			"cluster_unlocked": true,
			"dcs_last_seen": 0,
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n9"}
		}`},
	}
	for _, tt := range tests {
		s, _ := newTestServer(tt.st)
		rec := do(t, s, http.MethodGet, "/patroni")
		if rec.Code != http.StatusOK {
			t.Errorf("%s: status %d", tt.name, rec.Code)
		}
		if got, want := rec.Body.String(), compactJSON(t, tt.want); got != want {
			t.Errorf("%s: /patroni\n got %s\nwant %s", tt.name, got, want)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", tt.name, ct)
		}
	}
}

// TestPatroniJSONSyncFlags: a replica listed in the sync key says sync_standby (synchronous_mode:
// on) or quorum_standby (quorum) right after xlog, as Patroni; the flags are absent otherwise.
func TestPatroniJSONSyncFlags(t *testing.T) {
	replicaWith := func(flag string) string {
		return compactJSON(t, `{
			"state": "running",
			"postmaster_start_time": "2024-01-02 14:00:00+00:00",
			"role": "replica",
			"server_version": 160004,
			"xlog": {"received_location": 67395656, "replayed_location": 67395656, "replayed_timestamp": "2024-01-02 17:04:00.500000+02:00", "paused": false},
			`+flag+`
			"timeline": 2,
			"replication_state": "streaming",
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n2"}
		}`)
	}
	async := syncCluster(replica(), "on")
	async.Name = "n3"
	tests := []struct {
		name string
		st   *ha.Status
		want string
	}{
		{"sync standby", syncStandby(), replicaWith(`"sync_standby": true,`)},
		{"quorum standby", quorumStandby(), replicaWith(`"quorum_standby": true,`)},
		{"listed, mode off", syncCluster(replica(), "off"), replicaWith("")},
	}
	for _, tt := range tests {
		s, _ := newTestServer(tt.st)
		if got := do(t, s, http.MethodGet, "/patroni").Body.String(); got != tt.want {
			t.Errorf("%s: /patroni\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
	for _, st := range []*ha.Status{async, syncCluster(primary(), "on"), syncCluster(primary(), "quorum")} {
		s, _ := newTestServer(st)
		if got := do(t, s, http.MethodGet, "/patroni").Body.String(); strings.Contains(got, "_standby") {
			t.Errorf("%s (%s): /patroni = %s, want no sync_standby or quorum_standby", st.Name, st.SyncMode, got)
		}
	}
	// The flags are health-check body too.
	s, _ := newTestServer(syncStandby())
	if got := do(t, s, http.MethodGet, "/sync").Body.String(); !strings.Contains(got, `"sync_standby":true`) {
		t.Errorf("GET /sync body = %s, want sync_standby", got)
	}
}

// TestClusterJSONSyncRoles: members listed in the sync key are sync_standby (synchronous_mode: on)
// or quorum_standby (quorum); the leader stays leader even when listed, and with synchronous
// replication off a leftover sync key means nothing.
func TestClusterJSONSyncRoles(t *testing.T) {
	roles := func(st *ha.Status) map[string]string {
		t.Helper()
		s, _ := newTestServer(st)
		var body struct {
			Members []struct{ Name, Role, State string }
		}
		if err := json.Unmarshal(do(t, s, http.MethodGet, "/cluster").Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range body.Members {
			out[m.Name] = m.Role
			if m.Name == "n2" && m.State != "streaming" {
				t.Errorf("n2 state = %q, want its replication state", m.State)
			}
		}
		return out
	}
	withSync := func(st *ha.Status, mode string, listed ...string) *ha.Status {
		st = syncCluster(st, mode)
		st.Cluster.Sync.SyncStandby = listed
		return st
	}
	tests := []struct {
		name string
		st   *ha.Status
		want map[string]string
	}{
		{"on", withSync(primary(), "on", "n2"), map[string]string{"n1": "leader", "n2": "sync_standby", "n3": "replica"}},
		{"quorum", withSync(primary(), "quorum", "n2", "N3"), map[string]string{"n1": "leader", "n2": "quorum_standby", "n3": "quorum_standby"}},
		{"off, key left over", withSync(primary(), "off", "n2"), map[string]string{"n1": "leader", "n2": "replica", "n3": "replica"}},
		{"mode unset", withSync(primary(), "", "n2"), map[string]string{"n1": "leader", "n2": "replica", "n3": "replica"}},
		{"leader listed", withSync(primary(), "on", "n1", "n2"), map[string]string{"n1": "leader", "n2": "sync_standby", "n3": "replica"}},
		{"no sync key", func() *ha.Status { st := syncCluster(primary(), "on"); st.Cluster.Sync = nil; return st }(),
			map[string]string{"n1": "leader", "n2": "replica", "n3": "replica"}},
		{"seen from the sync standby", syncStandby(), map[string]string{"n1": "leader", "n2": "sync_standby", "n3": "replica"}},
	}
	for _, tt := range tests {
		if got := roles(tt.st); !maps.Equal(got, tt.want) {
			t.Errorf("%s: roles %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPatroniJSONBadTags(t *testing.T) {
	st := replica()
	st.Tags = map[string]any{"bad": func() {}}
	s, _ := newTestServer(st)
	rec := do(t, s, http.MethodGet, "/patroni")
	if rec.Code != http.StatusOK || !json.Valid(rec.Body.Bytes()) || strings.Contains(rec.Body.String(), "tags") {
		t.Fatalf("/patroni with unencodable tags: %d %s", rec.Code, rec.Body)
	}
}

func TestClusterJSON(t *testing.T) {
	paused := primary()
	paused.Pause = true
	s, _ := newTestServer(paused)
	rec := do(t, s, http.MethodGet, "/cluster")
	want := compactJSON(t, `{
		"members": [
			{"name": "n1", "role": "leader", "state": "running", "api_url": "http://10.0.0.1:8008/patroni",
			 "host": "10.0.0.1", "port": 5432, "timeline": 2},
			{"name": "n2", "role": "replica", "state": "streaming", "api_url": "http://10.0.0.2:8008/patroni",
			 "host": "node2.example", "port": 5433, "timeline": 2, "tags": {"zone": "b"},
			 "receive_lsn": "0/4046074", "receive_lag": 0,
			 "replay_lsn": "0/4046010", "replay_lag": 56,
			 "lsn": "0/4046010", "lag": 56},
			{"name": "n3", "role": "replica", "state": "starting", "api_url": null,
			 "host": "fd00::3", "port": 5432, "pending_restart": true,
			 "pending_restart_reason": {"max_connections": {"old_value": "100", "new_value": "200"}},
			 "scheduled_restart": {"schedule": "2024-01-02T16:00:00+00:00", "postgres_version": "15.3"},
			 "receive_lsn": "unknown", "receive_lag": "unknown",
			 "replay_lsn": "unknown", "replay_lag": "unknown",
			 "lsn": "unknown", "lag": "unknown"}
		],
		"pause": true,
		"scheduled_switchover": {"at": "2024-01-02T16:00:00+00:00", "from": "n1", "to": "n2"},
		"scope": "demo"
	}`)
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("/cluster = %d\n got %s\nwant %s", rec.Code, rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// Before the first Status, and without a DCS snapshot.
	s, _ = newTestServer(nil)
	if got := do(t, s, http.MethodGet, "/cluster").Body.String(); got != `{"members":[],"scope":"demo"}` {
		t.Errorf("/cluster before the first status = %s", got)
	}
	st := replica()
	st.Cluster = nil
	st.Scope = "other"
	s, _ = newTestServer(st)
	if got := do(t, s, http.MethodGet, "/cluster").Body.String(); got != `{"members":[],"scope":"other"}` {
		t.Errorf("/cluster without a cluster = %s", got)
	}
}

func TestHistoryJSON(t *testing.T) {
	s, _ := newTestServer(primary())
	rec := do(t, s, http.MethodGet, "/history")
	want := `[[1,50331808,"no recovery target specified","2024-01-02T15:00:00.123456+00:00","n1"],[2,83886240,"no recovery target specified"]]`
	if rec.Code != http.StatusOK || rec.Body.String() != want {
		t.Errorf("/history = %d %s, want %s", rec.Code, rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, st := range []*ha.Status{nil, replica(), func() *ha.Status { st := replica(); st.Cluster = nil; return st }()} {
		if st != nil && st.Cluster != nil {
			st.Cluster.History = nil
		}
		s, _ := newTestServer(st)
		if got := do(t, s, http.MethodGet, "/history").Body.String(); got != "[]" {
			t.Errorf("/history without history = %s, want []", got)
		}
	}
}

func TestHelpers(t *testing.T) {
	for lsn, want := range map[int64]string{0: "0/0", 0x1000000A0: "1/A0", 67395656: "0/4046048", 0xFFFFFFFF: "0/FFFFFFFF"} {
		if got := patroni.FormatLSN(lsn); got != want {
			t.Errorf("patroni.FormatLSN(%#x) = %s, want %s", lsn, got, want)
		}
	}
	hosts := []struct {
		url  string
		host string
		port int
	}{
		{"postgres://10.0.0.1:5432/postgres", "10.0.0.1", 5432},
		{"postgres://DB.example/postgres", "db.example", 5432},
		{"postgresql://[fd00::1]:6432/postgres?sslmode=require", "fd00::1", 6432},
		{"postgres://user:pw@h:5433/db", "h", 5433},
		{"postgres:///postgres", "", 0},
		{"", "", 0},
		{"postgres://h:notaport/db", "", 0},
		{"%zz", "", 0},
	}
	for _, h := range hosts {
		if host, port := connHostPort(h.url); host != h.host || port != h.port {
			t.Errorf("connHostPort(%q) = %q %d, want %q %d", h.url, host, port, h.host, h.port)
		}
	}
	if got := pyTime(time.Date(2024, 1, 2, 3, 4, 5, 999, time.UTC)); got != "2024-01-02 03:04:05+00:00" {
		t.Errorf("pyTime without microseconds = %s", got)
	}
	if got := pyTime(time.Date(2024, 1, 2, 3, 4, 5, 1000, time.FixedZone("", -5*3600-1800))); got != "2024-01-02 03:04:05.000001-05:30" {
		t.Errorf("pyTime = %s", got)
	}
}

// TestSnapshotCache checks that bodies are built once per published Status and rebuilt after a
// new one is published.
func TestSnapshotCache(t *testing.T) {
	st := replica()
	s, box := newTestServer(st)
	a := s.snapshotFor(st)
	if b := s.snapshotFor(st); a != b {
		t.Fatal("same Status, different snapshots")
	}
	c1, _ := s.clusterBody(a)
	c2, _ := s.clusterBody(a)
	if &c1[0] != &c2[0] {
		t.Error("/cluster body rebuilt for the same Status")
	}

	next := replica()
	next.ReplayedLocation = 42
	box.p.Store(next)
	body := do(t, s, http.MethodGet, "/patroni").Body.String()
	if !strings.Contains(body, `"replayed_location":42`) {
		t.Errorf("body after publishing a new Status: %s", body)
	}
	if s.snapshotFor(next) == a {
		t.Error("new Status served from the old snapshot")
	}
	// A request that still holds the old Status gets its bodies but does not evict the new ones.
	old := s.snapshotFor(st)
	if old.st != st || s.cache.Load().st != next {
		t.Error("an old Status evicted the cache of the current one")
	}
}

// TestPatroniJSONManagementFields covers the fields the management endpoints add to /patroni.
func TestPatroniJSONManagementFields(t *testing.T) {
	st := stopped()
	st.PendingRestartReason = map[string]ha.PendingChange{
		"max_connections": {OldValue: "100", NewValue: "200"},
		"shared_buffers":  {OldValue: "128MB", NewValue: "1GB"},
	}
	st.ScheduledRestart = &ha.ScheduledRestart{
		Schedule: time.Date(2024, 1, 2, 18, 0, 0, 0, time.FixedZone("", 2*3600)), Role: "primary",
		PostgresVersion: 160004, RestartPending: true,
	}
	st.FailsafeActive = true
	st.WatchdogFailed = true

	minimal := stopped()
	minimal.ScheduledRestart = &ha.ScheduledRestart{Schedule: time.Date(2024, 1, 2, 16, 0, 0, 500000000, time.UTC)}
	minimal.PendingRestartReason = map[string]ha.PendingChange{}

	old := stopped()
	old.ScheduledRestart = &ha.ScheduledRestart{Schedule: scheduled, PostgresVersion: 90624}

	tests := []struct {
		name string
		st   *ha.Status
		want string
	}{
		{"all fields", st, `{
			"state": "stopped",
			"role": "primary",
			"failsafe_mode_is_active": true,
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"pending_restart": true,
			"pending_restart_reason": {
				"max_connections": {"old_value": "100", "new_value": "200"},
				"shared_buffers": {"old_value": "128MB", "new_value": "1GB"}
			},
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n1"},
			"scheduled_restart": {"schedule": "2024-01-02T18:00:00+02:00", "postgres_version": "16.4", "role": "primary", "restart_pending": true},
			"watchdog_failed": true
		}`},
		{"schedule only, empty reasons", minimal, `{
			"state": "stopped",
			"role": "primary",
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n1"},
			"scheduled_restart": {"schedule": "2024-01-02T16:00:00.500000+00:00"}
		}`},
		{"version before 10", old, `{
			"state": "stopped",
			"role": "primary",
			"dcs_last_seen": 1704207845,
			"database_system_identifier": "7408277255830290455",
			"patroni": {"version": "0.1.0", "scope": "demo", "name": "n1"},
			"scheduled_restart": {"schedule": "2024-01-02T16:00:00+00:00", "postgres_version": "9.6.24"}
		}`},
	}
	for _, tt := range tests {
		s, _ := newTestServer(tt.st)
		for _, path := range []string{"/patroni", "/health", "/replica"} {
			rec := do(t, s, http.MethodGet, path)
			if got, want := rec.Body.String(), compactJSON(t, tt.want); got != want {
				t.Errorf("%s: GET %s\n got %s\nwant %s", tt.name, path, got, want)
			}
		}
	}
}
