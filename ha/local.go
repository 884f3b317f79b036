package ha

import (
	"context"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/tusker-ha/tusker/callbacks"
	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/postgres"
	"github.com/tusker-ha/tusker/watchdog"
)

// applyLocalChanges runs at the start of a cycle: what the inbox holds (reports of long actions,
// requests of management calls), a re-read local configuration (SIGHUP), a
// requested reload (POST /reload), and a scheduled restart that is due.
func (n *Node) applyLocalChanges(ctx context.Context) {
	n.drain()
	busy := n.job != NoJob
	select {
	case c := <-n.cfgUpdates:
		if busy {
			n.cfgUpdates <- c // an action may be reading the configuration: apply it later
			break
		}
		n.adoptConfig(c)
	default:
	}
	if !busy && n.reloadReq.Swap(false) {
		n.reloadPostgres(ctx, true)
	}
	// Scheduled actions wait while paused (Patroni runs none in maintenance mode).
	if ScheduledRestartDue(n.scheduledRestartAt(), n.now(), busy, n.dyn.Pause) {
		sr := n.restartAt
		n.restartAt = nil
		req := RestartRequest{Role: sr.Role, PostgresVersion: sr.PostgresVersion, RestartPending: sr.RestartPending}
		if !restartConditions(n.Status(), req) {
			n.log.Warn("scheduled restart not done", "reason", "restart conditions are not satisfied")
		} else if _, err := n.startRestart(); err != nil {
			n.log.Warn("scheduled restart not done", "reason", err)
		}
	}
}

// adoptConfig takes over a re-read local configuration. The member's name and scope, the DCS
// and the data directory cannot change while running; a change to them is logged and ignored.
func (n *Node) adoptConfig(c *config.Config) {
	old := n.cfg
	if c.Name != old.Name || c.Scope != old.Scope || c.Namespace != old.Namespace ||
		c.PostgreSQL.DataDir != old.PostgreSQL.DataDir {
		n.log.Warn("configuration reload: name, scope, namespace and data_dir cannot change while tusker runs; restart tusker for that")
		c2 := *c
		c2.Name, c2.Scope, c2.Namespace, c2.PostgreSQL.DataDir = old.Name, old.Scope, old.Namespace, old.PostgreSQL.DataDir
		c = &c2
	}
	n.cfg = c
	n.log.Info("configuration reloaded", "source", c.Source)
	n.reloadPostgres(context.Background(), true)
}

// reloadPostgres recomputes the postgres configuration; when it changed (or force) it rewrites the
// files and reloads a running postgres, then fires on_reload.
func (n *Node) reloadPostgres(ctx context.Context, force bool) {
	pc := n.postgresConfig()
	if !force && pgConfEqual(pc, n.pgConf) {
		return
	}
	if err := n.applyPostgresConfig(ctx); err != nil {
		n.log.Warn("reloading postgres failed", "err", err)
	}
}

// applyPostgresConfig hands the current postgres configuration to postgres: the files are
// rewritten and a running postgres reloads them (on_reload follows).
func (n *Node) applyPostgresConfig(ctx context.Context) error {
	pc := n.postgresConfig()
	n.pgConf = pc
	n.pg.SetConfig(pc)
	if !n.pg.Running() {
		return nil
	}
	_, _, rt := n.dyn.TimingDurations()
	rctx, cancel := context.WithTimeout(ctx, rt)
	defer cancel()
	if err := n.pg.Reload(rctx); err != nil {
		return err
	}
	n.log.Info("postgres configuration reloaded")
	n.fire(callbacks.ActionOnReload)
	return nil
}

func pgConfEqual(a, b postgres.Config) bool {
	return maps.Equal(a.Parameters, b.Parameters) && maps.Equal(a.RecoveryConf, b.RecoveryConf) && slices.Equal(a.PgHBA, b.PgHBA) &&
		slices.Equal(a.PgIdent, b.PgIdent) && a.UseSlots == b.UseSlots &&
		a.Superuser == b.Superuser && a.Replication == b.Replication && a.Rewind == b.Rewind
}

// fire runs a callback for the current role.
func (n *Node) fire(action string) {
	cmd := ""
	cb := n.cfg.PostgreSQL.Callbacks
	switch action {
	case "on_start":
		cmd = cb.OnStart
	case "on_stop":
		cmd = cb.OnStop
	case "on_restart":
		cmd = cb.OnRestart
	case callbacks.ActionOnReload:
		cmd = cb.OnReload
	case "on_role_change":
		cmd = cb.OnRoleChange
	}
	n.cb.Fire(cmd, action, n.callbackRole(), n.cfg.Scope)
}

// callbackRole is the role callbacks are told: primary or replica, as postgres runs now.
func (n *Node) callbackRole() string {
	if r := n.cbRole.Load(); r != nil {
		return *r
	}
	return "replica"
}

func (n *Node) setRole(role string) { n.cbRole.Store(&role) }

// beforeStop runs the before_stop hook; its exit code does not matter, but a hung one must not
// hold the shutdown for longer than retry_timeout.
func (n *Node) beforeStop(ctx context.Context, rt time.Duration) {
	cmd := n.cfg.PostgreSQL.BeforeStop
	if cmd == "" {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, max(rt, 5*time.Second))
	defer cancel()
	if err := callbacks.Hook(hctx, n.log, "before_stop", cmd, nil); err != nil {
		n.log.Warn("before_stop failed; stopping postgres anyway", "err", err)
	}
}

// stopPostgres is every deliberate stop: before_stop, the stop itself, on_stop.
// rt is the caller's retry_timeout (the loop's, or a long action's copy).
func (n *Node) stopPostgres(ctx context.Context, mode postgres.StopMode, callback bool, rt time.Duration) error {
	if !n.pg.Running() {
		return nil
	}
	n.beforeStop(ctx, rt)
	n.disableWatchdog()
	if err := n.pg.Stop(ctx, mode); err != nil {
		return err
	}
	if callback {
		n.fire("on_stop")
	}
	return nil
}

func (n *Node) scheduledRestartAt() time.Time {
	if n.restartAt == nil {
		return time.Time{}
	}
	return n.restartAt.Schedule
}

// watchdog ------------------------------------------------------------------------------------

// watchdogUsable tells Decide whether a required watchdog could be activated: it is active, or
// its device exists.
func (n *Node) watchdogUsable() bool {
	if n.wd.Mode() != watchdog.Required || n.wd.Active() {
		return true
	}
	_, err := os.Stat(n.cfg.Watchdog.Device)
	return err == nil
}

// activateWatchdog arms the watchdog before a promotion; in required mode a failure refuses it.
// d is the caller's dynamic configuration (the loop's, or a long action's copy).
func (n *Node) activateWatchdog(d config.Dynamic) error {
	if d.Pause {
		return nil
	}
	ttl, _, _ := d.TimingDurations()
	return n.wd.Activate(ttl)
}

// keepaliveWatchdog pings the watchdog right after every lease renewal. A leader running as
// primary whose watchdog is not active (it took a free lock with postgres already primary, or
// maintenance mode just ended) arms it here.
func (n *Node) keepaliveWatchdog() {
	if !n.wd.Active() && n.wd.Mode() != watchdog.Off && !n.dyn.Pause && n.pg.Running() && n.pgReady && !n.lastPG.InRecovery {
		if err := n.activateWatchdog(n.dyn); err != nil {
			n.log.Error("the required watchdog cannot be armed on this primary", "err", err)
		}
		return
	}
	if err := n.wd.Keepalive(); err != nil {
		n.log.Warn("watchdog keepalive failed", "err", err)
	}
}

func (n *Node) disableWatchdog() {
	if err := n.wd.Disable(); err != nil {
		n.log.Warn("disabling the watchdog failed", "err", err)
	}
}
