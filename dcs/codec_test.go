package dcs

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestKeysLayout(t *testing.T) {
	k := NewKeys("", "batman")
	require.Equal(t, "/service/batman/", k.Prefix)
	require.Equal(t, "/service/batman/members/n1", k.Member("n1"))
	require.Equal(t, "/db/x/leader", NewKeys("/db/", "x").Leader())
}

func TestDecodePatroniValuesAndSkipsGarbage(t *testing.T) {
	k := NewKeys("/service", "c")
	c := k.Decode([]KV{
		{Key: "/service/c/initialize", Value: []byte("7300000000000000001")},
		{Key: "/service/c/config", Value: []byte(`{"ttl":30}`), Version: 7},
		{Key: "/service/c/leader", Value: []byte("n2"), Version: 9},
		{Key: "/service/c/status", Value: []byte(`{"optime":67108960,"slots":{"n1":67108960}}`)},
		{Key: "/service/c/history", Value: []byte(`[[1,25165984,"no recovery target specified","2026-11-21T00:00:00+00:00","n2"],[2,33554592,"x"]]`)},
		{Key: "/service/c/failover", Value: []byte(`{"leader":"n2","member":"n1","scheduled_at":"2026-11-21T12:00:00+00:00"}`)},
		{Key: "/service/c/members/n2", Value: []byte(`{"conn_url":"postgres://127.0.0.1:5433/postgres","api_url":"http://127.0.0.1:8009/patroni","state":"running","role":"primary","version":"3.0.2","xlog_location":67108960,"timeline":2}`)},
		{Key: "/service/c/members/n1", Value: []byte(`{"state":"running","role":"replica","tags":{"nofailover":true}}`)},
		{Key: "/service/c/members/bad", Value: []byte(`{"state":`)},
		{Key: "/service/c/members/", Value: []byte(`{}`)},
		{Key: "/service/c/sync", Value: []byte(`whatever`)},
		{Key: "/service/c/failsafe", Value: []byte(`{"n1":"http://127.0.0.1:8008/patroni","n2":"http://127.0.0.1:8009/patroni"}`)},
	})
	require.Equal(t, "http://127.0.0.1:8009/patroni", c.Failsafe["n2"])
	require.Equal(t, "7300000000000000001", *c.Initialize)
	require.Equal(t, int64(7), c.Config.Version)
	require.Equal(t, "n2", c.LeaderName())
	require.Equal(t, int64(67108960), c.Status.Optime)
	require.Equal(t, []HistoryEntry{
		{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2026-11-21T00:00:00+00:00", NewLeader: "n2"},
		{Timeline: 2, LSN: 33554592, Reason: "x"},
	}, c.History)
	require.Equal(t, "n1", c.Failover.Member)
	require.Equal(t, time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC), c.Failover.ScheduledAt.UTC())
	require.Len(t, c.Members, 2)
	require.Equal(t, "n1", c.Members[0].Name, "members sorted by name")
	require.Equal(t, true, c.Member("n1").Data.Tags["nofailover"])
	require.Equal(t, int64(67108960), *c.Member("n2").Data.XLogLocation)
	require.ElementsMatch(t, []string{"/service/c/members/bad", "/service/c/members/", "/service/c/sync"}, c.Invalid)
}

// TestUnusableSyncKeyKeepsItsVersion: a garbage or empty sync key names nobody, but its version is
// kept so that the leader can replace it by compare-and-set (a create would fail forever).
func TestUnusableSyncKeyKeepsItsVersion(t *testing.T) {
	for _, v := range []string{`whatever`, ``, `{"quorum":-2}`} {
		c := NewKeys("", "s").Decode([]KV{{Key: "/service/s/sync", Value: []byte(v), Version: 12}})
		require.NotNil(t, c.Sync, v)
		require.Equal(t, Sync{Version: 12}, *c.Sync, v)
		require.False(t, c.Sync.Has("n1"))
	}
}

func TestDecodeRejectsMalformedLeaderStatusHistoryFailover(t *testing.T) {
	k := NewKeys("/service", "c")
	c := k.Decode([]KV{
		{Key: "/service/c/leader", Value: []byte(`{"name":"n1"}`)},
		{Key: "/service/c/status", Value: []byte(`[1]`)},
		{Key: "/service/c/history", Value: []byte(`[[1]]`)},
		{Key: "/service/c/failover", Value: []byte(`no-colon`)},
		{Key: "/service/c/failsafe", Value: []byte(`["n1"]`)},
	})
	require.Nil(t, c.Failsafe)
	require.Nil(t, c.Leader)
	require.Nil(t, c.Failover)
	require.Empty(t, c.History)
	require.Len(t, c.Invalid, 5)
}

func TestFailoverNamingNobodyIsInvalid(t *testing.T) {
	for _, v := range []string{`{}`, `{"scheduled_at":"2026-11-21T12:00:00+00:00"}`, `:`, ` : `} {
		f, err := ParseFailover([]byte(v))
		require.Error(t, err, v)
		require.Contains(t, err.Error(), "names neither a leader nor a candidate")
		require.Nil(t, f)
	}
}

func TestFailoverForms(t *testing.T) {
	f, err := ParseFailover([]byte("n1:n2"))
	require.NoError(t, err)
	require.Equal(t, &Failover{Leader: "n1", Member: "n2"}, f)
	f, err = ParseFailover([]byte("  "))
	require.NoError(t, err)
	require.Nil(t, f)
	_, err = ParseFailover([]byte(`{"member":"n2","scheduled_at":"tomorrow"}`))
	require.ErrorContains(t, err, "scheduled_at")

	b, err := json.Marshal(Failover{Leader: "n1", Member: "n2"})
	require.NoError(t, err)
	require.JSONEq(t, `{"leader":"n1","member":"n2"}`, string(b))
}

func TestHistoryEntryJSONIsPatroniListForm(t *testing.T) {
	b, err := json.Marshal([]HistoryEntry{{Timeline: 1, LSN: 100, Reason: "r", Timestamp: "ts", NewLeader: "n2"}, {Timeline: 2, LSN: 200, Reason: "r"}})
	require.NoError(t, err)
	require.JSONEq(t, `[[1,100,"r","ts","n2"],[2,200,"r"]]`, string(b))
	h, err := ParseHistory(b)
	require.NoError(t, err)
	require.Equal(t, "n2", h[0].NewLeader)
}

func TestParseSync(t *testing.T) {
	s, err := ParseSync([]byte(`{"leader":"n0","sync_standby":"n1, n2","quorum":1}`))
	require.NoError(t, err)
	require.Equal(t, &Sync{Leader: "n0", SyncStandby: []string{"n1", "n2"}, Quorum: 1}, s)
	s, err = ParseSync([]byte(`{"leader":"n0","sync_standby":null}`))
	require.NoError(t, err)
	require.Empty(t, s.SyncStandby)
	s, err = ParseSync([]byte(" "))
	require.NoError(t, err)
	require.Nil(t, s)
	_, err = ParseSync([]byte(`{"quorum":-1}`))
	require.Error(t, err)
	_, err = ParseSync([]byte(`["n1"]`))
	require.Error(t, err)
	b, err := json.Marshal(Sync{Leader: "n0", SyncStandby: []string{"n1", "n2"}, Quorum: 2})
	require.NoError(t, err)
	require.JSONEq(t, `{"leader":"n0","sync_standby":"n1,n2","quorum":2}`, string(b))
	b, _ = json.Marshal(Sync{Leader: "n0"})
	require.JSONEq(t, `{"leader":"n0","sync_standby":null,"quorum":0}`, string(b))
	c := NewKeys("", "s").Decode([]KV{{Key: "/service/s/sync", Value: []byte(`{"leader":"a","sync_standby":"b"}`), Version: 7},
		{Key: "/service/s/sync", Value: []byte(`garbage`)}})
	require.Equal(t, int64(7), c.Sync.Version)
	require.Equal(t, []string{"/service/s/sync"}, c.Invalid)
}
