package ha

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

// leaseDCS records the lease settings the loop hands to the DCS; nothing else is called.
type leaseDCS struct {
	dcs.DCS
	ttls, retries []time.Duration
}

func (l *leaseDCS) SetTTL(d time.Duration)          { l.ttls = append(l.ttls, d) }
func (l *leaseDCS) SetRetryTimeout(d time.Duration) { l.retries = append(l.retries, d) }

// TestApplyDynamicBounds: the HA loop ignores a DCS config key whose values are out of bounds (or
// would break postgresql.conf or pg_hba.conf), logs the key by name, and keeps the configuration
// it had; it never hands the DCS a lease that wrapped around into a negative duration.
func TestApplyDynamicBounds(t *testing.T) {
	for _, tc := range []struct{ name, value, logged string }{
		{"ttl a day and a second", `{"ttl":86401,"loop_wait":1,"retry_timeout":2}`, "ttl: must be at most 86400 seconds (1 day), got 86401"},
		{"ttl 2^62", `{"ttl":4611686018427387904,"loop_wait":1,"retry_timeout":2}`,
			"ttl: must be at most 86400 seconds (1 day), got 4611686018427387904"},
		// 1 + 2*2^62 wrapped around into a negative sum that passed the timing rule, and the retry
		// timeout handed to the DCS was 2^62 s in nanoseconds, wrapped around.
		{"retry_timeout 2^62", `{"ttl":6,"loop_wait":1,"retry_timeout":4611686018427387904}`,
			"retry_timeout: must be at most 43200 seconds (12 hours), got 4611686018427387904"},
		{"loop_wait huge string", `{"ttl":6,"loop_wait":"9223372036854775807","retry_timeout":2}`,
			"loop_wait: must be at most 86400 seconds (1 day), got 9223372036854775807"},
		{"ttl 1e300", `{"ttl":1e300,"loop_wait":1,"retry_timeout":2}`, "ttl: expected an integer number of seconds, got 1e300"},
		{"ttl negative", `{"ttl":-6,"loop_wait":1,"retry_timeout":2}`, "ttl: must be at least 2 seconds, got -6"},
		{"primary_start_timeout", `{"primary_start_timeout":100000}`, "primary_start_timeout: must be at most 86400 seconds (1 day), got 100000"},
		{"master_start_timeout", `{"master_start_timeout":-1}`, "primary_start_timeout: must be >= 0 seconds, got -1"},
		{"primary_race_backoff", `{"primary_race_backoff":1e18}`, "primary_race_backoff: must be at most 86400 seconds (1 day), got 1000000000000000000"},
		{"parameter newline", `{"postgresql":{"parameters":{"archive_command":"x\nrestore_command = 'y'"}}}`,
			`postgresql.parameters.archive_command: must not contain a line break`},
		{"pg_hba newline", `{"postgresql":{"pg_hba":["local all all peer\nhost all all 0.0.0.0/0 trust"]}}`,
			`postgresql.pg_hba[0]: must not contain a line break`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			d := &leaseDCS{}
			good := config.DefaultDynamic()
			good.TTL, good.LoopWait, good.RetryTimeout = 30, 10, 10
			c := &config.Config{Name: "n1", Scope: "b", Bootstrap: config.Bootstrap{DCS: config.DefaultDynamic()},
				Watchdog: config.Watchdog{Mode: "off"}}
			n := NewNode(Options{Config: c, DCS: d, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

			// A good value first: applied.
			value, err := good.JSON()
			require.NoError(t, err)
			n.applyDynamic(&dcs.Cluster{Config: &dcs.ConfigKey{Value: value, Version: 1}})
			require.Equal(t, 30, n.dyn.TTL)
			require.Equal(t, []time.Duration{30 * time.Second}, d.ttls)
			require.Equal(t, []time.Duration{10 * time.Second}, d.retries)

			// Then the bad one: logged by key, not applied; the last good value stays.
			n.applyDynamic(&dcs.Cluster{Config: &dcs.ConfigKey{Value: []byte(tc.value), Version: 2}})
			assert.Contains(t, logs.String(), "ignoring the config key")
			assert.Contains(t, logs.String(), tc.logged)
			assert.Equal(t, [3]int{30, 10, 10}, [3]int{n.dyn.TTL, n.dyn.LoopWait, n.dyn.RetryTimeout})
			assert.Equal(t, good.PrimaryStartTimeout, n.dyn.PrimaryStartTimeout)
			assert.Equal(t, good.PrimaryRaceBackoff, n.dyn.PrimaryRaceBackoff)
			assert.Empty(t, n.dyn.PostgreSQL.Parameters)
			assert.Empty(t, n.dyn.PostgreSQL.PgHBA)
			assert.Equal(t, []time.Duration{30 * time.Second}, d.ttls, "no other lease handed to the DCS")
			assert.Equal(t, []time.Duration{10 * time.Second}, d.retries)
			s := n.settings()
			assert.Positive(t, s.PrimaryStartTimeout)
			assert.GreaterOrEqual(t, s.PrimaryRaceBackoff, time.Duration(0))

			// Reported once, not on every cycle.
			logged := logs.Len()
			n.applyDynamic(&dcs.Cluster{Config: &dcs.ConfigKey{Value: []byte(tc.value), Version: 2}})
			assert.Equal(t, logged, logs.Len())
		})
	}

	// A member that never saw a good value keeps its bootstrap.dcs (the defaults here).
	d := &leaseDCS{}
	c := &config.Config{Name: "n1", Scope: "b", Bootstrap: config.Bootstrap{DCS: config.DefaultDynamic()},
		Watchdog: config.Watchdog{Mode: "off"}}
	n := NewNode(Options{Config: c, DCS: d, Logger: slog.New(slog.DiscardHandler)})
	n.applyDynamic(&dcs.Cluster{Config: &dcs.ConfigKey{Value: []byte(`{"ttl":4611686018427387904}`), Version: 1}})
	assert.Equal(t, config.DefaultTTL, n.dyn.TTL)
	assert.Empty(t, d.ttls)
}
