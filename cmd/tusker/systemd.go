package main

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/internal/sdnotify"
)

// systemdPoll is how often the member's status is compared with what systemd was last told: a
// role change reaches `systemctl status` within it.
const systemdPoll = 250 * time.Millisecond

// systemdTold is what systemd has been told so far.
type systemdTold struct {
	ready    bool
	status   string
	lastPing time.Time
}

// systemdReady says whether the member has started, for READY=1 (Type=notify): PostgreSQL runs
// in its role (primary or replica) and the HA loop has completed a cycle; in maintenance mode a
// completed cycle is enough, since tusker then leaves PostgreSQL as it finds it.
func systemdReady(st *ha.Status) bool {
	if st == nil || st.LastLoop.IsZero() {
		return false
	}
	return st.Pause || (st.State == "running" && (st.Role == "primary" || st.Role == "replica"))
}

// systemdStatus is the one line `systemctl status` shows: the role and state, and what an
// operator looks for next (the lock, streaming, maintenance, a lost DCS).
func systemdStatus(st *ha.Status) string {
	if st == nil {
		return "starting"
	}
	parts := []string{st.Role, st.State}
	if st.Role == "replica" && st.ReplicationState != "" && st.State == "running" {
		parts = append(parts, st.ReplicationState)
	}
	if st.IsLeader {
		parts = append(parts, "leader")
	}
	if st.Pause {
		parts = append(parts, "maintenance mode")
	}
	if !st.DCSReachable {
		parts = append(parts, "DCS unreachable")
	}
	return strings.Join(parts, ", ")
}

// systemdMessages decides what to tell systemd at now, given the member's status and what was
// told before: READY=1 once, STATUS= on every change, and, with a watchdog, WATCHDOG=1 every
// half period while the HA loop is alive by /liveness's rule (so systemd restarts tusker when
// /liveness would have failed for WatchdogSec). The watchdog only counts from READY on.
func systemdMessages(st *ha.Status, now time.Time, watchdog time.Duration, told systemdTold) ([]string, systemdTold) {
	var msgs []string
	if s := systemdStatus(st); s != told.status {
		msgs = append(msgs, "STATUS="+s)
		told.status = s
	}
	if !told.ready && systemdReady(st) {
		msgs = append(msgs, "READY=1")
		told.ready = true
	}
	if watchdog > 0 && told.ready && st != nil && st.Alive(now) && now.Sub(told.lastPing) >= watchdog/2 {
		msgs = append(msgs, "WATCHDOG=1")
		told.lastPing = now
	}
	return msgs, told
}

// notifySystemd keeps systemd informed until ctx ends, then says STOPPING=1 and returns. status
// is the HA loop's published snapshot (it never blocks on the loop).
func notifySystemd(ctx context.Context, n *sdnotify.Notifier, status func() *ha.Status, log *slog.Logger) {
	var told systemdTold
	failing := false
	send := func(msgs []string) {
		if len(msgs) == 0 {
			return
		}
		if err := n.Send(msgs...); err != nil {
			if !failing {
				log.Warn("cannot notify systemd", "err", err)
			}
			failing = true
			return
		}
		failing = false
	}
	t := time.NewTicker(systemdPoll)
	defer t.Stop()
	for {
		var msgs []string
		msgs, told = systemdMessages(status(), time.Now(), n.Watchdog(), told)
		send(msgs)
		select {
		case <-ctx.Done():
			send([]string{"STOPPING=1", "STATUS=stopping: shutting PostgreSQL down, then releasing the leader key"})
			return
		case <-t.C:
		}
	}
}
