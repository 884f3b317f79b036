package config

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const storedConfig = `{
  "ttl": "20",
  "loop_wait": 5,
  "retry_timeout": 7.0,
  "maximum_lag_on_failover": 33554432,
  "master_start_timeout": 60,
  "check_timeline": "on",
  "synchronous_mode": "quorum",
  "synchronous_node_count": 2,
  "failsafe_mode": true,
  "slots": {"logical_1": {"type": "logical", "database": "app", "plugin": "pgoutput"}},
  "standby_cluster": null,
  "postgresql": {
    "use_pg_rewind": true,
    "use_slots": "false",
    "recovery_conf": {"restore_command": "cp /a/%f %p"},
    "parameters": {"max_connections": 200, "hot_standby": "on", "wal_log_hints": true, "random_page_cost": 1.5},
    "pg_hba": ["local all all trust"]
  }
}`

func TestParseDynamic(t *testing.T) {
	d, err := ParseDynamic([]byte(storedConfig))
	require.NoError(t, err)
	assert.Equal(t, 20, d.TTL)
	assert.Equal(t, 5, d.LoopWait)
	assert.Equal(t, 7, d.RetryTimeout)
	assert.Equal(t, int64(33554432), d.MaximumLagOnFailover)
	assert.Equal(t, 60, d.PrimaryStartTimeout, "master_start_timeout is an alias")
	assert.True(t, d.CheckTimeline)
	assert.False(t, d.Pause)
	assert.Equal(t, DynamicPostgreSQL{
		UsePgRewind:  true,
		UseSlots:     false,
		Parameters:   map[string]any{"max_connections": 200, "hot_standby": "on", "wal_log_hints": true, "random_page_cost": 1.5},
		PgHBA:        []string{"local all all trust"},
		RecoveryConf: map[string]any{"restore_command": "cp /a/%f %p"},
	}, d.PostgreSQL)
	assert.Equal(t, "quorum", d.Raw["synchronous_mode"])
	assert.Equal(t, "quorum", d.SyncMode())
	assert.Empty(t, d.Unimplemented())
	assert.Equal(t, map[string]PermanentSlot{"logical_1": {Type: "logical", Database: "app", Plugin: "pgoutput"}}, d.Slots)
	assert.Equal(t, DefaultMemberSlotsTTL, d.MemberSlotsTTL)
	assert.Empty(t, d.Validate(), "5 + 2*7 <= 20")
}

func TestParseDynamicRoundTripKeepsUnknownKeys(t *testing.T) {
	d, err := ParseDynamic([]byte(storedConfig))
	require.NoError(t, err)
	d.TTL = 30
	d.Pause = true
	d.PostgreSQL.Parameters["work_mem"] = "8MB"

	b, err := d.JSON()
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))

	assert.Equal(t, "quorum", got["synchronous_mode"])
	assert.Equal(t, float64(2), got["synchronous_node_count"])
	assert.Equal(t, true, got["failsafe_mode"])
	assert.Contains(t, got, "standby_cluster")
	assert.Nil(t, got["standby_cluster"])
	assert.Equal(t, map[string]any{"logical_1": map[string]any{"type": "logical", "database": "app", "plugin": "pgoutput"}},
		got["slots"])
	// Typed fields written back, normalised.
	assert.Equal(t, float64(30), got["ttl"])
	assert.Equal(t, float64(7), got["retry_timeout"])
	assert.Equal(t, float64(60), got["primary_start_timeout"])
	assert.NotContains(t, got, "master_start_timeout")
	assert.Equal(t, true, got["check_timeline"])
	assert.Equal(t, true, got["pause"])
	pg := got["postgresql"].(map[string]any)
	assert.Equal(t, false, pg["use_slots"])
	assert.Equal(t, true, pg["use_pg_rewind"])
	assert.Equal(t, map[string]any{"restore_command": "cp /a/%f %p"}, pg["recovery_conf"])
	assert.Equal(t, map[string]any{"max_connections": float64(200), "hot_standby": "on", "wal_log_hints": true,
		"random_page_cost": 1.5, "work_mem": "8MB"}, pg["parameters"])
	assert.Equal(t, []any{"local all all trust"}, pg["pg_hba"])

	// And back again: same typed values, same unknown keys.
	d2, err := ParseDynamic(b)
	require.NoError(t, err)
	assert.Equal(t, 30, d2.TTL)
	assert.True(t, d2.Pause)
	assert.Equal(t, d.PostgreSQL, d2.PostgreSQL)
	assert.Equal(t, d.Unimplemented(), d2.Unimplemented())
	b2, err := d2.JSON()
	require.NoError(t, err)
	assert.JSONEq(t, string(b), string(b2))

	// The original Raw is not modified by JSON.
	assert.Equal(t, "20", d.Raw["ttl"])
	assert.Equal(t, 60, d.Raw["master_start_timeout"])

	// Resuming removes the pause key, as Patroni does.
	d2.Pause = false
	b3, err := d2.JSON()
	require.NoError(t, err)
	assert.NotContains(t, string(b3), `"pause"`)
}

func TestDynamicJSONMarshalers(t *testing.T) {
	d, err := ParseDynamic([]byte(`{"ttl": 12, "custom_key": {"a": 1}}`))
	require.NoError(t, err)
	b, err := json.Marshal(struct {
		C Dynamic `json:"config"`
	}{d})
	require.NoError(t, err)
	assert.Contains(t, string(b), `"custom_key":{"a":1}`)

	var back struct {
		C Dynamic `json:"config"`
	}
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, 12, back.C.TTL)
	assert.Equal(t, map[string]any{"a": 1}, back.C.Raw["custom_key"])

	require.Error(t, json.Unmarshal([]byte(`{"config": {"ttl": "x"}}`), &back))
}

func TestParseDynamicErrorsNameTheKey(t *testing.T) {
	d, err := ParseDynamic([]byte(`{"ttl": "abc", "loop_wait": [1], "retry_timeout": 3, "postgresql": {"use_slots": "perhaps", "parameters": {"a": {"b": 1}}}}`))
	problems := problemsOf(t, err)
	assert.Equal(t, []string{
		`loop_wait: expected an integer number of seconds, got a list`,
		`postgresql.parameters.a: expected a string, number or boolean, got a map`,
		`postgresql.use_slots: expected a boolean (true/false, yes/no, on/off), got "perhaps"`,
		`ttl: expected an integer number of seconds, got "abc"`,
	}, problems)
	assert.Contains(t, err.Error(), "dynamic configuration")
	// Best effort: the rest is parsed, the offending keys keep their defaults.
	assert.Equal(t, DefaultTTL, d.TTL)
	assert.Equal(t, 3, d.RetryTimeout)
	assert.True(t, d.PostgreSQL.UseSlots)

	_, err = ParseDynamic([]byte(`{"ttl": 30`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "invalid JSON")
	_, err = ParseDynamic([]byte(`[1, 2]`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "expected a JSON object, got a list")

	for _, empty := range []string{"", "  ", "null", "{}"} {
		d, err := ParseDynamic([]byte(empty))
		require.NoError(t, err, empty)
		assert.Equal(t, DefaultDynamic(), d, empty)
	}
}

func TestDefaultDynamic(t *testing.T) {
	d := DefaultDynamic()
	assert.Equal(t, 6, d.TTL)
	assert.Equal(t, 1, d.LoopWait)
	assert.Equal(t, 2, d.RetryTimeout)
	assert.Equal(t, int64(1048576), d.MaximumLagOnFailover)
	assert.Equal(t, 300, d.PrimaryStartTimeout)
	assert.False(t, d.CheckTimeline)
	assert.True(t, d.PostgreSQL.UsePgRewind)
	assert.True(t, d.PostgreSQL.UseSlots)
	assert.Empty(t, d.Validate(), "the defaults satisfy loop_wait + 2*retry_timeout <= ttl")
	assert.LessOrEqual(t, d.LoopWait+2*d.RetryTimeout, d.TTL)

	b, err := d.JSON()
	require.NoError(t, err)
	assert.JSONEq(t, `{"ttl":6,"loop_wait":1,"retry_timeout":2,"maximum_lag_on_failover":1048576,
		"check_timeline":false,"primary_start_timeout":300,
		"postgresql":{"use_pg_rewind":true,"use_slots":true}}`, string(b))
}

func TestDynamicValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Dynamic)
		want []string
	}{
		{"ok", func(*Dynamic) {}, nil},
		{"ttl", func(d *Dynamic) { d.TTL = 1 }, []string{"ttl: must be at least 2 seconds, got 1"}},
		{"loop_wait", func(d *Dynamic) { d.LoopWait = 0 }, []string{"loop_wait: must be at least 1 second, got 0"}},
		{"retry_timeout", func(d *Dynamic) { d.RetryTimeout = 0 }, []string{"retry_timeout: must be at least 1 second, got 0"}},
		{"rule", func(d *Dynamic) { d.LoopWait = 3 }, []string{"loop_wait: loop_wait + 2*retry_timeout must be <= ttl, got 3 + 2*2 = 7 > ttl 6"}},
		{"rule limit", func(d *Dynamic) { d.LoopWait = 2 }, nil},
		{"lag", func(d *Dynamic) { d.MaximumLagOnFailover = -1 }, []string{"maximum_lag_on_failover: must be >= 0 bytes, got -1"}},
		{"start", func(d *Dynamic) { d.PrimaryStartTimeout = -5 }, []string{"primary_start_timeout: must be >= 0 seconds, got -5"}},
		{"param", func(d *Dynamic) { d.PostgreSQL.Parameters = map[string]any{"x": []any{1}} },
			[]string{"postgresql.parameters.x: expected a string, number or boolean"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DefaultDynamic()
			tc.mod(&d)
			got := d.Validate()
			require.Len(t, got, len(tc.want), "%q", got)
			for i := range got {
				assert.True(t, strings.HasPrefix(got[i], tc.want[i]), "got %q, want prefix %q", got[i], tc.want[i])
			}
		})
	}
}

func TestParseDynamicSynchronous(t *testing.T) {
	for in, want := range map[string]string{
		`{}`: "off", `{"synchronous_mode": true}`: "on", `{"synchronous_mode": "on"}`: "on",
		`{"synchronous_mode": false}`: "off", `{"synchronous_mode": "off"}`: "off",
		`{"synchronous_mode": "Quorum"}`: "quorum", `{"synchronous_mode": "yes"}`: "on",
	} {
		d, err := ParseDynamic([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, d.SyncMode(), in)
		assert.Empty(t, d.Validate(), in)
	}
	d, err := ParseDynamic([]byte(`{"synchronous_mode": "quorum", "synchronous_mode_strict": "on",
		"synchronous_node_count": "2", "maximum_lag_on_syncnode": 1024}`))
	require.NoError(t, err)
	assert.True(t, d.SynchronousModeStrict)
	assert.Equal(t, 2, d.SynchronousNodeCount)
	assert.Equal(t, int64(1024), d.MaximumLagOnSyncnode)
	b, err := d.JSON()
	require.NoError(t, err)
	assert.JSONEq(t, `{"ttl":6,"loop_wait":1,"retry_timeout":2,"maximum_lag_on_failover":1048576,
		"check_timeline":false,"primary_start_timeout":300,"synchronous_mode":"quorum",
		"synchronous_mode_strict":true,"synchronous_node_count":2,"maximum_lag_on_syncnode":1024,
		"postgresql":{"use_pg_rewind":true,"use_slots":true}}`, string(b))

	// A configuration without the synchronous settings stays without them.
	b, err = DefaultDynamic().JSON()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "synchronous")

	_, err = ParseDynamic([]byte(`{"synchronous_mode": "sometimes"}`))
	require.ErrorContains(t, err, `synchronous_mode: expected off, on or quorum (or a boolean), got "sometimes"`)
	_, err = ParseDynamic([]byte(`{"synchronous_mode": [1]}`))
	require.ErrorContains(t, err, "synchronous_mode")
	d, err = ParseDynamic([]byte(`{"synchronous_node_count": 0, "maximum_lag_on_syncnode": -5}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"synchronous_node_count: must be at least 1, got 0",
		"maximum_lag_on_syncnode: must be -1 (off) or >= 0 bytes, got -5"}, d.Validate())
}
