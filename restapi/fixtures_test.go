package restapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/ha"
)

var (
	t0        = time.Date(2024, 1, 2, 15, 4, 5, 123456000, time.UTC) // "now" of the fixtures
	started   = time.Date(2024, 1, 2, 14, 0, 0, 352526000, time.UTC)
	optime    = int64(67395656) // 0/4046048
	mib       = int64(1 << 20)
	sysid     = "7408277255830290455"
	version   = "0.1.0"
	replayed  = time.Date(2024, 1, 2, 17, 4, 0, 500000000, time.FixedZone("", 2*3600))
	scheduled = time.Date(2024, 1, 2, 16, 0, 0, 0, time.UTC)
)

func i64(v int64) *int64 { return &v }

func testCluster() *dcs.Cluster {
	return &dcs.Cluster{
		Leader: &dcs.Leader{Name: "n1"},
		Members: []dcs.Member{
			{Name: "n3", Data: dcs.MemberData{
				ConnURL: "postgres://[fd00::3]/postgres", State: "starting", Role: "replica",
				PendingRestart:       true,
				PendingRestartReason: map[string]dcs.ParamChange{"max_connections": {OldValue: "100", NewValue: "200"}},
				ScheduledRestart:     (&ha.ScheduledRestart{Schedule: scheduled, PostgresVersion: 150003}).Member(),
			}},
			{Name: "n1", Data: dcs.MemberData{
				ConnURL: "postgres://10.0.0.1:5432/postgres", APIURL: "http://10.0.0.1:8008/patroni",
				State: "running", Role: "primary", XLogLocation: i64(optime), Timeline: 2,
			}},
			{Name: "n2", Data: dcs.MemberData{
				ConnURL: "postgres://Node2.example:5433/postgres", APIURL: "http://10.0.0.2:8008/patroni",
				State: "running", Role: "replica", ReplicationState: "streaming", Timeline: 2,
				XLogLocation: i64(optime - 56), ReceiveLSN: i64(optime + 44), ReplayLSN: i64(optime - 56),
				Tags: map[string]any{"zone": "b"},
			}},
		},
		Status:   dcs.Status{Optime: optime},
		Failover: &dcs.Failover{Leader: "n1", Member: "n2", ScheduledAt: &scheduled},
		History: []dcs.HistoryEntry{
			{Timeline: 1, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2024-01-02T15:00:00.123456+00:00", NewLeader: "n1"},
			{Timeline: 2, LSN: 83886240, Reason: "no recovery target specified"},
		},
	}
}

// primary is the running primary holding the leader key.
func primary() *ha.Status {
	return &ha.Status{
		Name: "n1", Scope: "demo", Version: version,
		State: "running", Role: "primary", PostmasterStartTime: started, ServerVersion: 160004,
		Timeline: 2, SystemIdentifier: sysid, XLogLocation: optime,
		Replication: []ha.Replication{
			{Usename: "replicator", ApplicationName: "n2", ClientAddr: "10.0.0.2", State: "streaming", SyncState: "async"},
			{Usename: "replicator", ApplicationName: "n3", State: "streaming", SyncState: "async"},
		},
		IsLeader: true, DCSReachable: true, DCSLastSeen: t0, LeaderOptime: optime, Cluster: testCluster(),
		TTL: 30 * time.Second, MaximumLagOnFailover: mib, LastLoop: t0,
	}
}

// replica is a streaming replica that has replayed everything.
func replica() *ha.Status {
	return &ha.Status{
		Name: "n2", Scope: "demo", Version: version,
		State: "running", Role: "replica", PostmasterStartTime: started.Truncate(time.Second),
		ServerVersion: 160004, Timeline: 2, SystemIdentifier: sysid,
		ReceivedLocation: optime, ReplayedLocation: optime, ReplayedTimestamp: &replayed,
		ReplicationState: "streaming",
		DCSReachable:     true, DCSLastSeen: t0, LeaderOptime: optime, Cluster: testCluster(),
		TTL: 30 * time.Second, MaximumLagOnFailover: mib, LastLoop: t0,
	}
}

// lagging is a streaming replica that received nearly everything but replayed 2 MiB less.
func lagging() *ha.Status {
	st := replica()
	st.ReceivedLocation = optime - 1024
	st.ReplayedLocation = optime - 2*mib
	return st
}

// stopped is a former primary whose Postgres is stopped; it still holds the leader key.
func stopped() *ha.Status {
	return &ha.Status{
		Name: "n1", Scope: "demo", Version: version, State: "stopped", Role: "primary",
		SystemIdentifier: sysid, IsLeader: true, DCSReachable: true, DCSLastSeen: t0,
		LeaderOptime: optime, TTL: 30 * time.Second, MaximumLagOnFailover: mib, LastLoop: t0,
	}
}

// noLB is a healthy replica tagged noloadbalance.
func noLB() *ha.Status {
	st := replica()
	st.Tags = map[string]any{"noloadbalance": true}
	return st
}

// syncCluster is testCluster with synchronous_mode on or quorum: the sync key lists n2, as the
// HA loop publishes it (SyncMode from the dynamic configuration, the sync key in the snapshot).
func syncCluster(st *ha.Status, mode string) *ha.Status {
	st.SyncMode = mode
	if st.Cluster != nil {
		st.Cluster.Sync = &dcs.Sync{Leader: "n1", SyncStandby: []string{"n2"}, Quorum: 1}
	}
	return st
}

// syncStandby is the replica n2 listed in the sync key with synchronous_mode: on.
func syncStandby() *ha.Status {
	st := syncCluster(replica(), "on")
	st.SyncStandby = true
	return st
}

// quorumStandby is the replica n2 listed in the sync key with synchronous_mode: quorum.
func quorumStandby() *ha.Status {
	st := syncCluster(replica(), "quorum")
	st.QuorumStandby = true
	return st
}

// statusBox is the atomic pointer the HA loop would publish to.
type statusBox struct{ p atomic.Pointer[ha.Status] }

func (b *statusBox) get() *ha.Status { return b.p.Load() }

func newTestServer(st *ha.Status) (*Server, *statusBox) {
	box := &statusBox{}
	box.p.Store(st)
	s := New(Config{Now: func() time.Time { return t0.Add(time.Second) }, Name: "n9", Scope: "demo", Version: version}, box.get)
	return s, box
}

func do(t testing.TB, s *Server, method, target string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = testClient // this host: the default allowlist lets it in
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func code(t testing.TB, st *ha.Status, method, target string) int {
	t.Helper()
	s, _ := newTestServer(st)
	return do(t, s, method, target).Code
}

// compactJSON normalizes a literal expected JSON document for a byte comparison.
func compactJSON(t testing.TB, s string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(s)); err != nil {
		t.Fatalf("bad expected JSON: %v\n%s", err, s)
	}
	return buf.String()
}

const ok, unavailable = http.StatusOK, http.StatusServiceUnavailable

// withFailsafeKey adds the failsafe key the leader n1 wrote, with n1 at testClient's address.
func withFailsafeKey(st *ha.Status) *ha.Status {
	c := *st.Cluster
	c.Failsafe = map[string]string{"n1": "http://127.0.0.1:8008/patroni", "n2": "http://10.0.0.2:8008/patroni"}
	st.Cluster = &c
	return st
}

// testClient is the address of the unit tests' requests: loopback, as tuskerctl on a member.
const testClient = "127.0.0.1:40000"
