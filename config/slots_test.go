package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseDyn(t *testing.T, js string) (Dynamic, []string) {
	t.Helper()
	d, err := ParseDynamic([]byte(js))
	var probs []string
	if err != nil {
		probs = append(probs, err.Error())
	}
	return d, append(probs, d.Validate()...)
}

func TestPermanentSlots(t *testing.T) {
	d, probs := parseDyn(t, `{"slots": {"phys": null, "phys2": {"type": "physical", "cluster_type": "standby"},
		"deb": {"database": "app", "plugin": "pgoutput"}, "bare": {}}}`)
	require.Empty(t, probs)
	assert.Equal(t, map[string]PermanentSlot{
		"phys":  {Type: "physical"},
		"phys2": {Type: "physical", ClusterType: "standby"},
		"deb":   {Type: "logical", Database: "app", Plugin: "pgoutput"},
		"bare":  {Type: "physical"},
	}, d.Slots, "null and {} are physical; database and plugin make a slot logical")

	d, _ = parseDyn(t, `{"slots": {"a": null}, "permanent_slots": {"b": null}, "permanent_replication_slots": {}}`)
	assert.Equal(t, []string{"b"}, keys(d.Slots), "Patroni's order: permanent_replication_slots, permanent_slots, slots (the first non-empty)")

	for js, want := range map[string]string{
		`{"slots": {"Bad-Name": null}}`:                                           "not a valid replication slot name",
		`{"slots": {"l": {"type": "logical", "database": "app"}}}`:                "needs both database and plugin",
		`{"slots": {"l": {"type": "physical", "database": "app"}}}`:               "a physical slot has no database",
		`{"slots": {"l": {"type": "wal"}}}`:                                       "must be physical or logical",
		`{"slots": {"l": {"database": "app", "plugin": "../../x"}}}`:              "is not an output plugin name",
		`{"slots": {"l": {"database": "a\nb", "plugin": "pgoutput"}}}`:            "is not a database name",
		`{"slots": {"l": {"type": "physical", "cluster_type": "both"}}}`:          "must be primary or standby",
		`{"slots": {"l": {"database": "a", "plugin": "p", "cluster_type": "x"}}}`: "applies to physical slots only",
		`{"slots": ["a"]}`:                                    "expected a map of slot names",
		`{"ignore_slots": {"name": "a"}}`:                     "expected a list of slot matchers",
		`{"ignore_slots": [{}]}`:                              "an empty matcher would match every slot",
		`{"ignore_slots": [{"type": "both"}]}`:                "must be physical or logical",
		`{"member_slots_ttl": "30 fortnights"}`:               "expected a duration",
		`{"member_slots_ttl": "8d"}`:                          "must be between 0 and 168h0m0s",
		`{"member_slots_ttl": "999999999999d"}`:               "must be between 0 and 168h0m0s",
		`{"member_slots_ttl": -1}`:                            "must be between 0",
		`{"member_slots_ttl": "99999999999999999999999999d"}`: "expected a duration",
	} {
		_, probs := parseDyn(t, js)
		assert.Contains(t, strings.Join(probs, "; "), want, js)
	}
}

func TestMemberSlotsTTLUnits(t *testing.T) {
	for js, want := range map[string]time.Duration{
		`{}`: 30 * time.Minute, `{"member_slots_ttl": 0}`: 0, `{"member_slots_ttl": "0"}`: 0,
		`{"member_slots_ttl": 90}`: 90 * time.Second, `{"member_slots_ttl": "45min"}`: 45 * time.Minute,
		`{"member_slots_ttl": "2h"}`: 2 * time.Hour, `{"member_slots_ttl": "1d"}`: 24 * time.Hour,
		`{"member_slots_ttl": "1500ms"}`: 1500 * time.Millisecond, `{"member_slots_ttl": "10s"}`: 10 * time.Second,
	} {
		d, probs := parseDyn(t, js)
		require.Empty(t, probs, js)
		assert.Equal(t, want, d.MemberSlotsTTL, js)
	}
}

func TestIgnoreSlots(t *testing.T) {
	d, probs := parseDyn(t, `{"ignore_slots": [{"name": "keep"}, {"type": "logical", "plugin": "wal2json"}]}`)
	require.Empty(t, probs)
	assert.True(t, d.Ignored("keep", "physical", "", ""))
	assert.True(t, d.Ignored("keep", "logical", "app", "pgoutput"))
	assert.True(t, d.Ignored("cdc", "logical", "app", "wal2json"), "every field set matches")
	assert.False(t, d.Ignored("cdc", "logical", "app", "pgoutput"))
	assert.False(t, d.Ignored("other", "physical", "", ""))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
