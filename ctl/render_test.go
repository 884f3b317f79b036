package ctl

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

func render(t *testing.T, v clusterView, format string, extended, topology bool) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, writeClusters(&b, []clusterView{v}, format, extended, topology))
	return b.String()
}

func TestListFormats(t *testing.T) {
	v := buildClusterView("demo", testCluster(), nil)

	assert.Equal(t, `+ Cluster: demo (7300000000000000001) ----------+----+-----------+------------------+
| Member | Host           | Role    | State     | TL | Lag in MB | Tags             |
+--------+----------------+---------+-----------+----+-----------+------------------+
| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |                  |
| n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         1 |                  |
| n3     | 127.0.0.1:5434 | Replica | stopped   |    |   unknown | nofailover: true |
+--------+----------------+---------+-----------+----+-----------+------------------+
`, render(t, v, fmtPretty, false, false))

	assert.Equal(t, "Cluster\tMember\tHost\tRole\tState\tTL\tLag in MB\tTags\n"+
		"demo\tn1\t127.0.0.1:5432\tLeader\trunning\t2\t\t\n"+
		"demo\tn2\t127.0.0.1:5433\tReplica\tstreaming\t2\t1\t\n"+
		"demo\tn3\t127.0.0.1:5434\tReplica\tstopped\t\tunknown\t{nofailover: true}\n",
		render(t, v, fmtTSV, false, false))

	js := render(t, v, fmtJSON, false, false)
	assert.Equal(t, `[{"Cluster": "demo", "Member": "n1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 2}, `+
		`{"Cluster": "demo", "Member": "n2", "Host": "127.0.0.1:5433", "Role": "Replica", "State": "streaming", "TL": 2, "Lag in MB": 1}, `+
		`{"Cluster": "demo", "Member": "n3", "Host": "127.0.0.1:5434", "Role": "Replica", "State": "stopped", "Lag in MB": "unknown", "Tags": {"nofailover": true}}]`+"\n", js)
	var parsed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &parsed), "the JSON output must parse")
	require.Len(t, parsed, 3)

	assert.Equal(t, `- Cluster: demo
  Host: 127.0.0.1:5432
  Member: n1
  Role: Leader
  State: running
  TL: 2
- Cluster: demo
  Host: 127.0.0.1:5433
  Lag in MB: 1
  Member: n2
  Role: Replica
  State: streaming
  TL: 2
- Cluster: demo
  Host: 127.0.0.1:5434
  Lag in MB: unknown
  Member: n3
  Role: Replica
  State: stopped
  Tags:
    nofailover: true
`, render(t, v, fmtYAML, false, false))
}

// TestListExtendedAndFooter: -e adds the WAL columns, /patroni adds the pending restart reason and
// the scheduled restart, and the footer reports maintenance mode and a scheduled switchover.
func TestListExtendedAndFooter(t *testing.T) {
	c := testCluster()
	at := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	c.Failover = &dcs.Failover{Leader: "n1", Member: "n2", ScheduledAt: &at}
	c.Config.Value = []byte(`{"pause":true}`)
	c.Members[2].Data.Tags = nil
	statuses := map[string]map[string]any{"n2": {
		"pending_restart":        true,
		"pending_restart_reason": map[string]any{"max_connections": map[string]any{"old_value": "40", "new_value": "123"}},
		"scheduled_restart":      map[string]any{"schedule": "2030-01-02T03:00:00+00:00", "postgres_version": "15.4"},
	}}
	v := buildClusterView("demo", c, statuses)
	assert.Equal(t, `+ Cluster: demo (7300000000000000001) ----------+----+-----------+-------------+-------------+------------+------------+-----------------+--------------------------+---------------------------------------------+------+
| Member | Host           | Role    | State     | TL | Lag in MB | Receive LSN | Receive Lag | Replay LSN | Replay Lag | Pending restart | Pending restart reason   | Scheduled restart                           | Tags |
+--------+----------------+---------+-----------+----+-----------+-------------+-------------+------------+------------+-----------------+--------------------------+---------------------------------------------+------+
| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |             |             |            |            |                 |                          |                                             |      |
| n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         1 |   0/3200000 |           0 |  0/3100000 |          1 | *               | max_connections: 40->123 | 2030-01-02T03:00:00+00:00 if version < 15.4 |      |
| n3     | 127.0.0.1:5434 | Replica | stopped   |    |   unknown |     unknown |     unknown |    unknown |    unknown |                 |                          |                                             |      |
+--------+----------------+---------+-----------+----+-----------+-------------+-------------+------------+------------+-----------------+--------------------------+---------------------------------------------+------+
 Maintenance mode: on
 Switchover scheduled at: 2030-01-02T03:00:00+00:00
                    from: n1
                      to: n2
`, render(t, v, fmtPretty, true, false))

	// Without -e only the columns some member has a value for.
	assert.Equal(t, `+ Cluster: demo (7300000000000000001) ----------+----+-----------+-----------------+--------------------------+---------------------------------------------+
| Member | Host           | Role    | State     | TL | Lag in MB | Pending restart | Pending restart reason   | Scheduled restart                           |
+--------+----------------+---------+-----------+----+-----------+-----------------+--------------------------+---------------------------------------------+
| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |                 |                          |                                             |
| n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         1 | *               | max_connections: 40->123 | 2030-01-02T03:00:00+00:00 if version < 15.4 |
| n3     | 127.0.0.1:5434 | Replica | stopped   |    |   unknown |                 |                          |                                             |
+--------+----------------+---------+-----------+----+-----------+-----------------+--------------------------+---------------------------------------------+
 Maintenance mode: on
 Switchover scheduled at: 2030-01-02T03:00:00+00:00
                    from: n1
                      to: n2
`, render(t, v, fmtPretty, false, false))

	// Machine formats carry no footer.
	assert.NotContains(t, render(t, v, fmtJSON, false, false), "Maintenance")

	// The same from the member key alone (tusker and Patroni 4 publish both fields there).
	c.Members[1].Data.PendingRestart = true
	c.Members[1].Data.PendingRestartReason = map[string]dcs.ParamChange{"max_connections": {OldValue: "40", NewValue: "123"}}
	c.Members[1].Data.ScheduledRestart = &dcs.ScheduledRestart{Schedule: "2030-01-02T03:00:00+00:00", PostgresVersion: "15.4"}
	assert.Equal(t, render(t, v, fmtPretty, true, false), render(t, buildClusterView("demo", c, nil), fmtPretty, true, false))
}

// TestListMultilineCells: a cell of several lines (two pending parameters) puts rules between
// all rows, as prettytable does for patronictl.
func TestListMultilineCells(t *testing.T) {
	c := testCluster()
	c.Members = c.Members[:2]
	statuses := map[string]map[string]any{"n2": {"pending_restart_reason": map[string]any{
		"shared_buffers":  map[string]any{"old_value": "16MB", "new_value": "32MB"},
		"max_connections": map[string]any{"old_value": "40", "new_value": "123"},
	}}}
	out := render(t, buildClusterView("demo", c, statuses), fmtPretty, false, false)
	assert.Equal(t, `+ Cluster: demo (7300000000000000001) ----------+----+-----------+----------------------------+
| Member | Host           | Role    | State     | TL | Lag in MB | Pending restart reason     |
+--------+----------------+---------+-----------+----+-----------+----------------------------+
| n1     | 127.0.0.1:5432 | Leader  | running   |  2 |           |                            |
+--------+----------------+---------+-----------+----+-----------+----------------------------+
| n2     | 127.0.0.1:5433 | Replica | streaming |  2 |         1 | max_connections: 40->123   |
|        |                |         |           |    |           | shared_buffers: 16MB->32MB |
+--------+----------------+---------+-----------+----+-----------+----------------------------+
`, out)
}

// TestListHostsAndRoles: ports are left out when every member uses 5432 on its own host, as
// patronictl does; a standby leader and an uninitialized cluster are named as such.
func TestListHostsAndRoles(t *testing.T) {
	c := &dcs.Cluster{Leader: &dcs.Leader{Name: "a"}, Members: []dcs.Member{
		{Name: "a", Data: dcs.MemberData{ConnURL: "postgres://10.0.0.1:5432/postgres", State: "running", Role: "standby_leader", Timeline: 1}},
		{Name: "b", Data: dcs.MemberData{ConnURL: "postgres://10.0.0.2/postgres", State: "running", Role: "replica", Timeline: 1}},
	}}
	assert.Equal(t, `+ Cluster: dr (uninitialized) -------+---------+----+-----------+
| Member | Host     | Role           | State   | TL | Lag in MB |
+--------+----------+----------------+---------+----+-----------+
| a      | 10.0.0.1 | Standby Leader | running |  1 |           |
| b      | 10.0.0.2 | Replica        | running |  1 |   unknown |
+--------+----------+----------------+---------+----+-----------+
`, render(t, buildClusterView("dr", c, nil), fmtPretty, false, false))
}

func TestLagRounding(t *testing.T) {
	// Python's round(): halves go to the even neighbour.
	assert.Equal(t, int64(0), lagMB(mib/2))
	assert.Equal(t, int64(2), lagMB(3*mib/2))
	assert.Equal(t, int64(1), lagMB(mib/2+1))
	assert.Equal(t, "0/3200000", patroni.FormatLSN(50<<20))
	assert.Equal(t, "1/A", patroni.FormatLSN(1<<32+10))
}

func TestHistoryFormats(t *testing.T) {
	h := []dcs.HistoryEntry{
		{Timeline: 1, LSN: 50331808, Reason: "no recovery target specified", Timestamp: "2024-05-01T10:00:00.123456+00:00", NewLeader: "n1"},
		{Timeline: 2, LSN: 83886240, Reason: "no recovery target specified"},
	}
	out := func(format string) string {
		var b bytes.Buffer
		require.NoError(t, historyTable(h).write(&b, format))
		return b.String()
	}
	assert.Equal(t, `+----+----------+------------------------------+----------------------------------+------------+
| TL |      LSN | Reason                       | Timestamp                        | New Leader |
+----+----------+------------------------------+----------------------------------+------------+
|  1 | 50331808 | no recovery target specified | 2024-05-01T10:00:00.123456+00:00 | n1         |
|  2 | 83886240 | no recovery target specified |                                  |            |
+----+----------+------------------------------+----------------------------------+------------+
`, out(fmtPretty))
	assert.Equal(t, "TL\tLSN\tReason\tTimestamp\tNew Leader\n"+
		"1\t50331808\tno recovery target specified\t2024-05-01T10:00:00.123456+00:00\tn1\n"+
		"2\t83886240\tno recovery target specified\t\t\n", out(fmtTSV))
	// History rows keep their empty cells, as patronictl's (its table has no title).
	assert.Equal(t, `[{"TL": 1, "LSN": 50331808, "Reason": "no recovery target specified", "Timestamp": "2024-05-01T10:00:00.123456+00:00", "New Leader": "n1"}, `+
		`{"TL": 2, "LSN": 83886240, "Reason": "no recovery target specified", "Timestamp": "", "New Leader": ""}]`+"\n", out(fmtJSON))
	assert.Equal(t, `- LSN: 50331808
  New Leader: n1
  Reason: no recovery target specified
  TL: 1
  Timestamp: "2024-05-01T10:00:00.123456+00:00"
- LSN: 83886240
  New Leader: ""
  Reason: no recovery target specified
  TL: 2
  Timestamp: ""
`, out(fmtYAML))
}

func TestTableTitleLongerThanBorder(t *testing.T) {
	tb := &table{title: " Cluster: a-very-long-cluster-name (7300000000000000001) ", columns: []string{"A"}, rows: [][]any{{"x"}}}
	var b bytes.Buffer
	require.NoError(t, tb.write(&b, fmtPretty))
	assert.Equal(t, "+ Cl+\n| A |\n+---+\n| x |\n+---+\n", b.String())
}

// syncTestCluster is testCluster with synchronous_mode set to mode (raw JSON) in the config key
// and n2 and n3 listed in the sync key.
func syncTestCluster(mode string) *dcs.Cluster {
	c := testCluster()
	c.Config.Value = []byte(`{"ttl":6,"loop_wait":1,"synchronous_mode":` + mode + `}`)
	c.Sync = &dcs.Sync{Leader: "n1", SyncStandby: []string{"n2", "N3"}, Quorum: 1}
	return c
}

// TestListSyncRoles: a member listed in the sync key is a Sync Standby with synchronous_mode on
// (or true) and a Quorum Standby with quorum, in every format; with synchronous replication off
// (or no usable configuration) a leftover sync key leaves it a Replica.
func TestListSyncRoles(t *testing.T) {
	roles := func(c *dcs.Cluster) []string {
		var out []string
		for _, m := range buildClusterView("demo", c, nil).members {
			out = append(out, m.role)
		}
		return out
	}
	for _, tt := range []struct {
		mode string
		want []string
	}{
		{`"on"`, []string{"Leader", "Sync Standby", "Sync Standby"}},
		{`true`, []string{"Leader", "Sync Standby", "Sync Standby"}},
		{`"quorum"`, []string{"Leader", "Quorum Standby", "Quorum Standby"}},
		{`"off"`, []string{"Leader", "Replica", "Replica"}},
		{`false`, []string{"Leader", "Replica", "Replica"}},
		{`null`, []string{"Leader", "Replica", "Replica"}},
		{`"bogus"`, []string{"Leader", "Replica", "Replica"}},
	} {
		assert.Equal(t, tt.want, roles(syncTestCluster(tt.mode)), "synchronous_mode: %s", tt.mode)
	}

	// The leader stays Leader when listed; no sync key, no config key or a config key that is not
	// JSON mean Replica.
	c := syncTestCluster(`"on"`)
	c.Sync.SyncStandby = []string{"n1", "n2"}
	assert.Equal(t, []string{"Leader", "Sync Standby", "Replica"}, roles(c))
	c = syncTestCluster(`"on"`)
	c.Sync = nil
	assert.Equal(t, []string{"Leader", "Replica", "Replica"}, roles(c))
	c = syncTestCluster(`"on"`)
	c.Config = nil
	assert.Equal(t, []string{"Leader", "Replica", "Replica"}, roles(c))
	c = syncTestCluster(`"on"`)
	c.Config.Value = []byte(`{"synchronous_mode":"on",`)
	assert.Equal(t, []string{"Leader", "Replica", "Replica"}, roles(c))
	// A problem elsewhere in the configuration does not hide the mode.
	c = syncTestCluster(`"quorum", "ttl": "soon"`)
	assert.Equal(t, []string{"Leader", "Quorum Standby", "Quorum Standby"}, roles(c))

	c = syncTestCluster(`"on"`)
	c.Sync.SyncStandby = []string{"n2"}
	v := buildClusterView("demo", c, nil)
	assert.Equal(t, `+ Cluster: demo (7300000000000000001) ---+-----------+----+-----------+------------------+
| Member | Host           | Role         | State     | TL | Lag in MB | Tags             |
+--------+----------------+--------------+-----------+----+-----------+------------------+
| n1     | 127.0.0.1:5432 | Leader       | running   |  2 |           |                  |
| n2     | 127.0.0.1:5433 | Sync Standby | streaming |  2 |         1 |                  |
| n3     | 127.0.0.1:5434 | Replica      | stopped   |    |   unknown | nofailover: true |
+--------+----------------+--------------+-----------+----+-----------+------------------+
`, render(t, v, fmtPretty, false, false))
	assert.Contains(t, render(t, v, fmtPretty, false, true), "| + n2   | 127.0.0.1:5433 | Sync Standby | streaming |")
	assert.Contains(t, render(t, v, fmtTSV, false, false), "demo\tn2\t127.0.0.1:5433\tSync Standby\tstreaming\t2\t1\t\n")
	assert.Contains(t, render(t, v, fmtJSON, false, false), `{"Cluster": "demo", "Member": "n2", "Host": "127.0.0.1:5433", "Role": "Sync Standby", "State": "streaming", "TL": 2, "Lag in MB": 1}`)
	assert.Contains(t, render(t, v, fmtYAML, false, false), "  Member: n2\n  Role: Sync Standby\n")

	c = syncTestCluster(`"quorum"`)
	c.Sync.SyncStandby = []string{"n2"}
	v = buildClusterView("demo", c, nil)
	assert.Contains(t, render(t, v, fmtPretty, false, false), "| n2     | 127.0.0.1:5433 | Quorum Standby | streaming |  2 |         1 |")
	assert.Contains(t, render(t, v, fmtTSV, false, false), "demo\tn2\t127.0.0.1:5433\tQuorum Standby\tstreaming\t2\t1\t\n")
	assert.Contains(t, render(t, v, fmtJSON, false, false), `"Role": "Quorum Standby"`)
	assert.Contains(t, render(t, v, fmtYAML, false, false), "  Member: n2\n  Role: Quorum Standby\n")
}
