package config

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitHostPort(t *testing.T) {
	ok := []struct {
		in   string
		host string
		port int
	}{
		{"127.0.0.1:8008", "127.0.0.1", 8008},
		{"db1.example.com:5432", "db1.example.com", 5432},
		{"[::1]:5432", "::1", 5432},
		{"::1:5432", "::1", 5432},
		{":8008", "", 8008},
		{"h:65535", "h", 65535},
	}
	for _, tc := range ok {
		h, p, err := SplitHostPort(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.host, h, tc.in)
		assert.Equal(t, tc.port, p, tc.in)
	}
	for _, bad := range []string{"", "host", "host:", "host:0", "host:65536", "host:http", "[::1]", "a:b:c"} {
		_, _, err := SplitHostPort(bad)
		assert.Error(t, err, bad)
	}
}

func TestListenHosts(t *testing.T) {
	ok := []struct {
		in    string
		hosts []string
		port  int
	}{
		{"127.0.0.1:5432", []string{"127.0.0.1"}, 5432},
		{"127.0.0.1,::1:5432", []string{"127.0.0.1", "::1"}, 5432},
		{"127.0.0.1, 10.0.0.1:5433", []string{"127.0.0.1", "10.0.0.1"}, 5433},
		{"[::1]:5432", []string{"::1"}, 5432},
		{"*:5432", []string{"*"}, 5432},
		{"0.0.0.0:5432", []string{"0.0.0.0"}, 5432},
	}
	for _, tc := range ok {
		c := &Config{PostgreSQL: PostgreSQL{Listen: tc.in}}
		hosts, port, err := c.ListenHosts()
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.hosts, hosts, tc.in)
		assert.Equal(t, tc.port, port, tc.in)
	}
	for _, bad := range []string{"", "127.0.0.1", ":5432", "a,,b:5432", "::1", "[::1]", "h:x", "h:70000"} {
		c := &Config{PostgreSQL: PostgreSQL{Listen: bad}}
		_, _, err := c.ListenHosts()
		assert.Error(t, err, bad)
	}
}

func TestParameterString(t *testing.T) {
	cases := []struct {
		in   any
		want string
	}{
		{true, "on"},
		{false, "off"},
		{100, "100"},
		{int64(-3), "-3"},
		{uint64(18446744073709551615), "18446744073709551615"},
		{0.9, "0.9"},
		{float64(128), "128"},
		{1e-7, "0.0000001"},
		{float32(1.5), "1.5"},
		{json.Number("42"), "42"},
		{"128MB", "128MB"},
		{"on", "on"},
		{"", ""},
		{nil, ""},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, ParameterString(tc.in), "%#v", tc.in)
	}
}

func TestEffectiveUsePgRewind(t *testing.T) {
	on, off := true, false
	dynOn := DefaultDynamic()
	dynOn.PostgreSQL.UsePgRewind = true
	dynOff := DefaultDynamic()
	dynOff.PostgreSQL.UsePgRewind = false

	c := &Config{}
	assert.True(t, c.EffectiveUsePgRewind(dynOn))
	assert.False(t, c.EffectiveUsePgRewind(dynOff))
	c.PostgreSQL.UsePgRewind = &off
	assert.False(t, c.EffectiveUsePgRewind(dynOn))
	c.PostgreSQL.UsePgRewind = &on
	assert.True(t, c.EffectiveUsePgRewind(dynOff))
}

func TestSlogLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"": slog.LevelInfo, "debug": slog.LevelDebug, "INFO": slog.LevelInfo, "WARNING": slog.LevelWarn,
		"warn": slog.LevelWarn, "ERROR": slog.LevelError, "CRITICAL": slog.LevelError + 4,
	} {
		got, err := Log{Level: in}.SlogLevel()
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := Log{Level: "LOUD"}.SlogLevel()
	assert.Error(t, err)

	_, err = loadYAML(t, "log:\n  level: loud\n  type: xml\n")
	problems := problemsOf(t, err)
	require.Len(t, problems, 2, problems)
	assert.Contains(t, problems[0], "log.level: unknown log level \"LOUD\"")
	assert.Contains(t, problems[1], "log.type: expected plain or json, got \"xml\"")
}

func TestSafeFileName(t *testing.T) {
	assert.Equal(t, "node-1.a_b", safeFileName("node-1.a_b"))
	assert.Equal(t, "a_b_c___", safeFileName("a/b c\\ü"), "ü is two bytes")
	assert.Equal(t, "__", safeFileName(".."))
	assert.Equal(t, "_", safeFileName("."))
}
