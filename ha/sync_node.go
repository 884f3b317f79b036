package ha

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tusker-ha/tusker/postgres"
)

// The node's side of synchronous replication: the synchronous_standby_names tusker sets (instead
// of the configured one) and the WAL position from which it is known to be in effect.

// postgresConfig is PostgresConfig with the synchronous_standby_names tusker manages.
func (n *Node) postgresConfig() postgres.Config {
	pc := PostgresConfig(n.cfg, n.dyn, n.log)
	if n.syncGUC != nil {
		pc.Parameters["synchronous_standby_names"] = n.syncGUC.String()
	}
	return pc
}

// observeSync fills the synchronous replication part of the local view. A primary found running
// with a synchronous mode on (or a sync key of its own) keeps the synchronous_standby_names it
// runs with: writing the configured one over it could stop commits waiting for standbys the sync
// key still names.
func (n *Node) observeSync(v *View) {
	l := &v.Local
	if !l.Running || !l.Ready {
		return
	}
	if !l.Primary {
		if n.syncGUC != nil && SyncGUCReleased(*v) {
			n.syncGUC, n.syncConfirm = nil, 0
		}
		return
	}
	if n.syncGUC == nil && !SyncGUCAdopted(*v) {
		return // the configured value, nothing to manage: Decide does not look at it
	}
	g, err := postgres.ParseSyncNames(n.lastPG.SyncStandbyNames)
	if err != nil {
		n.log.Warn("cannot parse synchronous_standby_names; treating it as empty", "err", err)
	}
	l.SyncGUC = g
	if n.syncGUC == nil {
		n.syncGUC = &g
	}
	if n.syncGUC != nil && n.syncConfirm == 0 {
		// In effect for at least a cycle (tusker restarted, or the last change was not seen
		// taking effect): every commit from now on waits for it.
		n.syncConfirm = l.WALEnd
	}
	l.SyncManaged = n.syncGUC != nil
	l.SyncConfirm = n.syncConfirm
	for _, r := range n.lastPG.Replication {
		l.Replicas = append(l.Replicas, ReplicaConn{Name: r.ApplicationName, Streaming: r.State == "streaming", Flush: r.FlushLSN})
	}
}

// executeSync carries out one synchronous replication step.
func (n *Node) executeSync(ctx context.Context, a Action, v View) error {
	switch a.Kind {
	case WriteSyncKey:
		if err := n.dcs.SetSync(ctx, a.SyncKey, a.SyncVersion); err != nil {
			return fmt.Errorf("writing the sync key: %w", err)
		}
		n.log.Info("sync key written", "leader", a.SyncKey.Leader, "sync_standby", strings.Join(a.SyncKey.SyncStandby, ","),
			"quorum", a.SyncKey.Quorum)
		return nil
	case DeleteSyncKey:
		if err := n.dcs.DeleteSync(ctx); err != nil {
			return fmt.Errorf("deleting the sync key: %w", err)
		}
		n.log.Info("sync key deleted")
		return nil
	case SetSyncGUC:
		g := a.GUC
		return n.setSyncGUC(ctx, &g, v.Local.Running && v.Local.Primary)
	case RestoreSyncGUC:
		return n.setSyncGUC(ctx, nil, false)
	}
	return fmt.Errorf("not a synchronous replication step: %v", a.Kind)
}

// setSyncGUC sets synchronous_standby_names (nil: the configured value) and, on a running
// primary, waits until it is in effect and records the WAL position from which it is.
func (n *Node) setSyncGUC(ctx context.Context, g *postgres.SyncNames, primary bool) error {
	n.syncGUC, n.syncConfirm = g, 0
	if err := n.applyPostgresConfig(ctx); err != nil {
		return fmt.Errorf("setting synchronous_standby_names: %w", err)
	}
	what := "the configured value"
	if g != nil {
		what = fmt.Sprintf("%q", g.String())
	}
	n.log.Info("synchronous_standby_names set", "value", what)
	if g == nil || !primary || !n.pg.Running() {
		return nil
	}
	_, _, rt := n.dyn.TimingDurations()
	wctx, cancel := context.WithTimeout(ctx, rt)
	defer cancel()
	for {
		st, err := n.pg.State(wctx)
		if err == nil && inEffect(st, *g) {
			n.lastPG = st
			n.syncConfirm = st.WALPosition
			return nil
		}
		select {
		case <-wctx.Done():
			// Left unconfirmed: the next cycle counts it from then (observeSync).
			return fmt.Errorf("synchronous_standby_names %q not seen in effect within %s", g.String(), rt)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// inEffect: this session sees g, and every walsender reports the priority g gives it, so the
// walsenders that release waiting commits have reloaded it too.
func inEffect(st postgres.State, g postgres.SyncNames) bool {
	cur, err := postgres.ParseSyncNames(st.SyncStandbyNames)
	if err != nil || !gucEqual(cur, g) {
		return false
	}
	for _, r := range st.Replication {
		want := 0
		for i, name := range g.Names {
			if strings.EqualFold(name, r.ApplicationName) {
				want = i + 1
				if g.Any {
					want = 1
				}
				break
			}
		}
		if r.SyncPriority != want {
			return false
		}
	}
	return true
}
