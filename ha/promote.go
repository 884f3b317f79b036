package ha

// Promotion, switchover handover and the history key (long actions).

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/callbacks"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

// promote turns the local replica into the primary, checkpoints (so that the old primary can
// pg_rewind against us) and records the timeline switch in the history key.
func (n *Node) promote(ctx context.Context) error {
	if err := n.prePromote(ctx); err != nil {
		return err
	}
	f := false
	n.post(func() {
		n.checkpointed = &f
		n.forgetRejoin()
	})
	if err := n.pg.Promote(ctx); err != nil {
		return err
	}
	n.postUpstream("")
	n.setRole("primary")
	n.fire("on_role_change")
	n.log.Info("promoted to primary")
	// Publish the new role now: the slots and the checkpoint below take a few hundred ms that
	// health checks (/primary) and load balancers need not wait for.
	n.Wake()
	// The other members reconnect at once; their slots must be there when they do (otherwise
	// each waits wal_retrieve_retry_interval before trying again).
	if n.env.dyn.PostgreSQL.UseSlots && n.env.cluster != nil {
		// Creations only: what to drop is the loop's to decide, with what it knows is tusker's.
		n.applySlots(ctx, n.slotView(n.env.cluster, n.env.dyn, true, n.env.settings.NoFailover, n.env.cluster.Status.RetainSlots),
			func(string) bool { return false })
	}
	if err := n.pg.Checkpoint(ctx); err != nil {
		n.log.Warn("checkpoint after promote failed", "err", err)
	}
	t := true
	n.post(func() { n.checkpointed = &t })
	n.recordHistory(ctx)
	return nil
}

// recordHistory (part of the promote action) appends the timeline switch to the history key.
func (n *Node) recordHistory(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := n.pg.State(qctx)
	if err != nil {
		return
	}
	entry, ok := readTimelineSwitch(n.cfg.PostgreSQL.DataDir, st.Timeline)
	if !ok {
		return
	}
	entry.Timestamp = n.now().Format("2006-01-02T15:04:05.999999-07:00")
	entry.NewLeader = n.cfg.Name
	var hist []dcs.HistoryEntry
	if n.env.cluster != nil {
		hist = append(hist, n.env.cluster.History...)
	}
	for _, h := range hist {
		if h.Timeline == entry.Timeline {
			return
		}
	}
	hist = append(hist, entry)
	if err := n.dcs.SetHistory(qctx, hist); err != nil {
		n.log.Warn("writing the history key failed", "err", err)
	}
}

// handover is the leader's side of a switchover: checkpoint (so that the shutdown checkpoint is
// quick), stop cleanly, publish the final WAL position, then release the lock so that the target,
// woken by its watch on the leader key, takes over at once.
func (n *Node) handover(ctx context.Context, target string) error {
	ttl, _, rt := n.env.dyn.TimingDurations()
	start := n.now()
	cctx, cancel := context.WithTimeout(ctx, max(2*rt, 10*time.Second))
	if err := n.pg.Checkpoint(cctx); err != nil {
		n.log.Warn("switchover: checkpoint before stopping failed", "err", err)
	}
	cancel()
	n.beforeStop(ctx, rt)
	n.disableWatchdog()
	stopAt := n.now()
	if err := n.pg.Stop(ctx, postgres.StopFast); err != nil {
		return fmt.Errorf("switchover: stopping postgres: %w", err)
	}
	n.fire("on_stop") // told the role postgres had when it stopped
	n.setRole("demoted")
	backoff := n.now().Add(ttl)
	n.post(func() {
		n.upstream = ""
		n.forgetRejoin()
		// Stay down until the new leader is known (Decide's crash-handover rule), then rejoin.
		n.raceBackoff, n.handedOver = backoff, true
	})

	final := int64(0)
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), rt)
	defer dcancel()
	if cd, err := n.pg.ControlData(dctx); err == nil && cd.State == "shut down" {
		final = cd.CheckpointLSN
		if err := n.dcs.SetStatus(dctx, dcs.Status{Optime: final}); err != nil {
			n.log.Warn("switchover: publishing the final WAL position failed", "err", err)
		}
	}
	// No waiting for the target here: postgres' walsenders do not finish a shutdown before the
	// connected standbys have flushed everything, and the target checks its own position
	// against the final one before it promotes (a target that lacks WAL leaves the decision to
	// the normal race, which picks the most advanced member).
	n.leaseLost()
	if err := n.dcs.ReleaseLeader(dctx); err != nil {
		return fmt.Errorf("switchover: releasing the leader key: %w", err)
	}
	n.log.Info("switchover: leader key released", "to", target, "final_lsn", patroni.FormatLSN(final),
		"stop_took", n.since(stopAt).Round(time.Millisecond), "took", n.since(start).Round(time.Millisecond))
	return nil
}

// prePromote arms the watchdog and runs pre_promote. When either refuses, the lock is released
// and this member stays out of the race for a ttl (Patroni's rule), so that another can win.
func (n *Node) prePromote(ctx context.Context) error {
	err := n.activateWatchdog(n.env.dyn)
	if err == nil && n.cfg.PostgreSQL.PrePromote != "" {
		_, _, rt := n.env.dyn.TimingDurations()
		// Bounded: the lease is renewed by the loop meanwhile, but a hung fencing script must not
		// keep the cluster without a primary for long.
		hctx, cancel := context.WithTimeout(ctx, max(2*rt, 10*time.Second))
		err = callbacks.Hook(hctx, n.log, "pre_promote", n.cfg.PostgreSQL.PrePromote, nil)
		cancel()
	}
	if err == nil {
		return nil
	}
	ttl, _, rt := n.env.dyn.TimingDurations()
	backoff := n.now().Add(ttl)
	n.post(func() { n.raceBackoff = backoff })
	n.leaseLost()
	n.disableWatchdog()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rt)
	defer cancel()
	if rerr := n.dcs.ReleaseLeader(rctx); rerr != nil {
		n.log.Warn("releasing the leader key after a refused promotion failed", "err", rerr)
	}
	return fmt.Errorf("promotion refused, leader key released: %w", err)
}

// readTimelineSwitch reads the last line of pg_wal/<timeline>.history: "<old tl>\t<lsn>\t<reason>".
func readTimelineSwitch(dataDir string, tl int) (dcs.HistoryEntry, bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "pg_wal", fmt.Sprintf("%08X.history", tl)))
	if err != nil {
		return dcs.HistoryEntry{}, false
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	f := strings.SplitN(lines[len(lines)-1], "\t", 3)
	if len(f) < 2 {
		return dcs.HistoryEntry{}, false
	}
	old, err1 := strconv.Atoi(strings.TrimSpace(f[0]))
	lsn, err2 := patroni.ParseLSN(strings.TrimSpace(f[1]))
	if err1 != nil || err2 != nil {
		return dcs.HistoryEntry{}, false
	}
	e := dcs.HistoryEntry{Timeline: old, LSN: lsn, Reason: "no recovery target specified"}
	if len(f) == 3 {
		e.Reason = strings.TrimSpace(f[2])
	}
	return e, true
}
