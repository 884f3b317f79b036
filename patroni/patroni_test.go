package patroni

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// tags decodes a member key's tags as every reader of a key does: JSON into map[string]any.
func tags(t *testing.T, js string) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(js), &m))
	return m
}

func TestBoolIsPythonTruthiness(t *testing.T) {
	for _, c := range []struct {
		v    any
		want bool
	}{
		{nil, false}, {false, false}, {true, true}, {0.0, false}, {1.0, true}, {-1.0, true},
		{"", false}, {"true", true}, {"yes", true}, {"on", true},
		// Patroni's bool() of a non-empty string is True, whatever it says.
		{"false", true}, {"no", true}, {"0", true},
		{[]any{}, false}, {[]any{"x"}, true}, {map[string]any{}, false}, {json.Number("0"), false}, {json.Number("2"), true},
	} {
		require.Equal(t, c.want, Bool(c.v), "%#v", c.v)
	}
}

func TestIntIsParseInt(t *testing.T) {
	for _, c := range []struct {
		v    any
		want int
		ok   bool
	}{
		{2.0, 2, true}, {0.0, 0, true}, {-3.0, -3, true}, {"7", 7, true}, {" 7 ", 7, true},
		{2.5, 0, false}, {"x", 0, false}, {"2.0", 0, false}, {true, 0, false}, {nil, 0, false}, {1e12, 0, false},
		{json.Number("4"), 4, true},
	} {
		n, ok := Int(c.v)
		require.Equal(t, c.ok, ok, "%#v", c.v)
		require.Equal(t, c.want, n, "%#v", c.v)
	}
}

func TestNoFailoverAndPriorityFollowPatroni(t *testing.T) {
	for _, c := range []struct {
		tags       string
		noFailover bool
		priority   int
	}{
		{`{}`, false, 1},
		{`{"nofailover": true}`, true, 0},
		{`{"nofailover": false}`, false, 1},
		{`{"failover_priority": 0}`, true, 0},
		{`{"failover_priority": 3}`, false, 3},
		{`{"failover_priority": "2"}`, false, 2},
		{`{"failover_priority": -1}`, true, -1},
		{`{"failover_priority": "high"}`, false, 1},
		// nofailover, when present, wins over failover_priority, even when false.
		{`{"nofailover": false, "failover_priority": 0}`, false, 0},
		{`{"nofailover": true, "failover_priority": 5}`, true, 0},
		{`{"nofailover": "yes"}`, true, 0},
		{`{"nofailover": "false"}`, true, 0},
		{`{"nofailover": null, "failover_priority": 0}`, true, 0},
	} {
		tg := tags(t, c.tags)
		require.Equal(t, c.noFailover, NoFailover(tg), "NoFailover(%s)", c.tags)
		require.Equal(t, c.priority, FailoverPriority(tg), "FailoverPriority(%s)", c.tags)
	}
}

func TestOtherTags(t *testing.T) {
	tg := tags(t, `{"nosync": true, "noloadbalance": "on", "clonefrom": 1, "replicatefrom": "n2", "nostream": "yes"}`)
	require.True(t, NoSync(tg))
	require.Equal(t, 0, SyncPriority(tg), "nosync means sync_priority 0")
	require.True(t, NoLoadBalance(tg))
	require.True(t, CloneFrom(tg))
	require.True(t, NoStream(tg))
	require.Equal(t, "n2", ReplicateFrom(tg))
	require.False(t, NoSync(nil))
	require.Equal(t, 1, SyncPriority(nil))
	require.True(t, NoSync(tags(t, `{"sync_priority": 0}`)), "sync_priority 0 is nosync")
	require.Equal(t, 3, SyncPriority(tags(t, `{"sync_priority": 3}`)))
	require.False(t, NoSync(tags(t, `{"nosync": false, "sync_priority": 0}`)), "nosync, when present, wins")
	require.Equal(t, "", ReplicateFrom(tags(t, `{"replicatefrom": 3}`)))
	require.False(t, NoStream(tags(t, `{"nostream": "maybe"}`)), "nostream is parse_bool: unknown spellings are false")
}

func TestParseBool(t *testing.T) {
	for v, want := range map[any]bool{"on": true, "TRUE": true, "Yes": true, "1": true, true: true, 1.0: true,
		"off": false, "False": false, "no": false, "0": false, false: false, 0.0: false} {
		b, ok := ParseBool(v)
		require.True(t, ok, "%#v", v)
		require.Equal(t, want, b, "%#v", v)
	}
	for _, v := range []any{nil, "", "y", "maybe", 2.0} {
		_, ok := ParseBool(v)
		require.False(t, ok, "%#v", v)
	}
}

func TestString(t *testing.T) {
	require.Equal(t, "true", String(true))
	require.Equal(t, "2", String(2.0))
	require.Equal(t, "2.5", String(2.5))
	require.Equal(t, "x", String("x"))
	require.Equal(t, "", String(nil))
	require.Equal(t, "[a]", String([]any{"A"}))
	require.Equal(t, "1e+20", String(1e20))
}

func TestConnHostPort(t *testing.T) {
	for _, c := range []struct {
		url, host string
		port      int
		err       string
	}{
		{"postgres://10.0.0.1:5433/postgres", "10.0.0.1", 5433, ""},
		{"postgres://DB-1.Example:5432/postgres", "db-1.example", 5432, ""},
		{"postgres://db1/postgres", "db1", 5432, ""},
		{"postgres://[::1]:6000/postgres", "::1", 6000, ""},
		{"postgres://[::1]/postgres", "::1", 5432, ""},
		{"postgres://user:pw@db1:5432/postgres", "db1", 5432, ""},
		{"postgres://db1:0/postgres", "db1", 0, "not 1-65535"},
		{"postgres://db1:70000/postgres", "db1", 0, "not 1-65535"},
		{"", "", 0, "is not postgres://"},
		{"db1:5432", "", 0, "is not postgres://"},
		{"postgres:///postgres", "", 0, "is not postgres://"},
		{"postgres://%zz/", "", 0, "is not postgres://"},
	} {
		h, p, err := ConnHostPort(c.url)
		require.Equal(t, c.host, h, c.url)
		require.Equal(t, c.port, p, c.url)
		if c.err == "" {
			require.NoError(t, err, c.url)
		} else {
			require.ErrorContains(t, err, c.err, c.url)
		}
	}
}

func TestLSN(t *testing.T) {
	require.Equal(t, "0/0", FormatLSN(0))
	require.Equal(t, "16/B374D848", FormatLSN(0x16_B374D848))
	require.Equal(t, "FFFFFFFF/FFFFFFFF", FormatLSN(-1))
	n, err := ParseLSN(" 16/b374d848 ")
	require.NoError(t, err)
	require.Equal(t, int64(0x16_B374D848), n)
	for _, bad := range []string{"", "16", "x/1", "1/x", "100000000/0", "0/100000000"} {
		_, err := ParseLSN(bad)
		require.ErrorContains(t, err, "invalid LSN", bad)
	}
	for _, v := range []int64{0, 1, 0xFFFFFFFF, 0x1_00000000, 0x7FFFFFFF_FFFFFFFF} {
		back, err := ParseLSN(FormatLSN(v))
		require.NoError(t, err)
		require.Equal(t, v, back)
	}
}

func FuzzConnHostPort(f *testing.F) {
	f.Add("postgres://db1:5432/postgres")
	f.Add("postgres://[::1]:x/")
	f.Fuzz(func(t *testing.T, s string) {
		h, p, err := ConnHostPort(s)
		if err == nil && (h == "" || p < 1 || p > 65535) {
			t.Fatalf("%q: no error but host %q port %d", s, h, p)
		}
	})
}
