package ha

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
)

// Rule failsafe-sender: only the last leader seen, listed in the failsafe key, may vouch for itself.
func TestFailsafeSenderIsLeader(t *testing.T) {
	key := &dcs.Cluster{Failsafe: map[string]string{"a": "http://10.0.0.1:8008/patroni", "b": "http://10.0.0.2:8008/patroni"}}
	for _, tc := range []struct {
		name, sender, lastLeader string
		c                        *dcs.Cluster
		ok                       bool
	}{
		{"the last leader, listed", "a", "a", key, true},
		{"a listed replica that never led", "b", "a", key, false},
		{"a stranger naming a member that is not the leader", "c", "a", key, false},
		{"the last leader, not in the key", "a", "a", &dcs.Cluster{Failsafe: map[string]string{"b": "x"}}, false},
		{"no failsafe key", "a", "a", &dcs.Cluster{}, false},
		{"no leader seen yet", "a", "", key, false},
		{"no name", "", "", key, false},
		{"no cluster", "a", "a", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.ok, FailsafeSenderIsLeader(tc.sender, tc.lastLeader, tc.c))
		})
	}
}
