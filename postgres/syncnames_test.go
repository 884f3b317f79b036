package postgres

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSyncNames(t *testing.T) {
	for in, want := range map[string]SyncNames{
		"":                         {},
		"  ":                       {},
		"n2":                       {Num: 1, Names: []string{"n2"}},
		"n2, n3":                   {Num: 1, Names: []string{"n2", "n3"}},
		"*":                        {Num: 1, Names: []string{"*"}},
		"2 (n2,n3)":                {Num: 2, Names: []string{"n2", "n3"}},
		"FIRST 1 (n2)":             {Num: 1, Names: []string{"n2"}},
		"first 2 (a, b, c)":        {Num: 2, Names: []string{"a", "b", "c"}},
		`ANY 1 ("n2","N3")`:        {Any: true, Num: 1, Names: []string{"n2", "N3"}},
		`any 2 ("a""b", "c d", e)`: {Any: true, Num: 2, Names: []string{`a"b`, "c d", "e"}},
		`"first"`:                  {Num: 1, Names: []string{"first"}},
		`FIRST`:                    {Num: 1, Names: []string{"FIRST"}},
	} {
		got, err := ParseSyncNames(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"(", "a,", ",a", "ANY 1 (a", "ANY 0 (a)", "ANY 1 ()", `"a`, "a b", "1 (a) b"} {
		_, err := ParseSyncNames(bad)
		assert.Error(t, err, bad)
	}
}

func TestSyncNamesString(t *testing.T) {
	for _, s := range []SyncNames{
		{Num: 1, Names: []string{"n2"}},
		{Any: true, Num: 2, Names: []string{"n2", `we"ird`, "N3"}},
		{Num: 1, Names: []string{"*"}},
	} {
		got, err := ParseSyncNames(s.String())
		require.NoError(t, err, s.String())
		assert.Equal(t, s, got, "round trip of %s", s.String())
	}
	assert.Equal(t, `ANY 1 ("a","b")`, SyncNames{Any: true, Num: 1, Names: []string{"a", "b"}}.String())
	assert.Equal(t, "", SyncNames{}.String())
	assert.True(t, SyncNames{Num: 1, Names: []string{"N2"}}.Has("n2"))
	assert.True(t, SyncNames{Num: 1, Names: []string{"*"}}.Has("x"))
	assert.False(t, SyncNames{Num: 1, Names: []string{"n3"}}.Has("n2"))
}
