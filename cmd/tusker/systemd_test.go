package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/ha"
)

func TestSystemdMessages(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	wd := 10 * time.Second
	starting := &ha.Status{Role: "uninitialized", State: "creating replica", DCSReachable: true, TTL: 6 * time.Second, LastLoop: t0}
	replica := &ha.Status{Role: "replica", State: "running", ReplicationState: "streaming", DCSReachable: true, TTL: 6 * time.Second, LastLoop: t0}

	var told systemdTold
	msgs, told := systemdMessages(nil, t0, wd, told)
	require.Equal(t, []string{"STATUS=starting"}, msgs, "no status yet: not ready")

	msgs, told = systemdMessages(starting, t0, wd, told)
	require.Equal(t, []string{"STATUS=uninitialized, creating replica"}, msgs, "cloning: not ready, no watchdog yet")

	msgs, told = systemdMessages(replica, t0, wd, told)
	require.Equal(t, []string{"STATUS=replica, running, streaming", "READY=1", "WATCHDOG=1"}, msgs)

	msgs, told = systemdMessages(replica, t0.Add(2*time.Second), wd, told)
	require.Empty(t, msgs, "nothing changed and the watchdog was fed less than half a period ago")

	alive := *replica
	alive.LastLoop = t0.Add(5 * time.Second)
	msgs, told = systemdMessages(&alive, t0.Add(6*time.Second), wd, told)
	require.Equal(t, []string{"WATCHDOG=1"}, msgs, "READY is said once")

	stalled := alive // the loop has not completed a cycle for 2*ttl: /liveness fails, so does the watchdog
	msgs, told = systemdMessages(&stalled, t0.Add(5*time.Second+12*time.Second), wd, told)
	require.Empty(t, msgs)

	primary := &ha.Status{Role: "primary", State: "running", IsLeader: true, DCSReachable: false, TTL: 6 * time.Second, LastLoop: t0.Add(30 * time.Second)}
	msgs, _ = systemdMessages(primary, t0.Add(31*time.Second), 0, told)
	require.Equal(t, []string{"STATUS=primary, running, leader, DCS unreachable"}, msgs, "no watchdog configured: no WATCHDOG=1")
}

func TestSystemdReady(t *testing.T) {
	now := time.Now()
	for _, tt := range []struct {
		st   *ha.Status
		want bool
	}{
		{nil, false},
		{&ha.Status{Role: "primary", State: "running"}, false}, // no completed cycle yet
		{&ha.Status{Role: "primary", State: "running", LastLoop: now}, true},
		{&ha.Status{Role: "replica", State: "running", LastLoop: now}, true},
		{&ha.Status{Role: "replica", State: "starting", LastLoop: now}, false},
		{&ha.Status{Role: "uninitialized", State: "stopped", LastLoop: now}, false},
		{&ha.Status{Role: "replica", State: "stopped", Pause: true, LastLoop: now}, true}, // maintenance mode leaves postgres alone
	} {
		require.Equal(t, tt.want, systemdReady(tt.st), "%+v", tt.st)
	}
}
