package ha

// The bootstrap of a new cluster (a long action).

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tusker-ha/tusker/callbacks"
	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

func (n *Node) bootstrap(ctx context.Context) error {
	err := n.doBootstrap(ctx)
	if err == nil {
		return nil
	}
	n.log.Error("bootstrap failed: removing the partial data directory and the initialize key", "err", err)
	_ = n.pg.Stop(context.WithoutCancel(ctx), postgres.StopImmediate)
	_ = n.pg.RemoveDataDir()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if n.hasLease() {
		_ = n.dcs.ReleaseLeader(cctx)
		n.leaseLost()
	}
	_ = n.dcs.CancelInitialize(cctx)
	return err
}

func (n *Node) doBootstrap(ctx context.Context) error {
	if err := n.activateWatchdog(n.env.dyn); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	role := "primary"
	switch {
	case n.env.dyn.Standby() != nil:
		// A standby cluster's first member: a copy of the remote primary, started as its
		// replica, is the standby leader. Nothing is written to it: no roles, no post_bootstrap.
		if err := n.bootstrapStandby(ctx); err != nil {
			return err
		}
		role = "standby_leader"
	case n.cfg.Bootstrap.Custom != nil:
		if err := n.customBootstrap(ctx, n.cfg.Bootstrap.Custom); err != nil {
			return err
		}
	default:
		if err := n.pg.Initdb(ctx, n.cfg.Bootstrap.Initdb); err != nil {
			return err
		}
		if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary}); err != nil {
			return err
		}
	}
	if role == "primary" {
		if err := n.setUpNewCluster(ctx); err != nil {
			return err
		}
	}
	return n.claimCluster(ctx, role)
}

// setUpNewCluster creates tusker's roles and bootstrap.users and runs post_bootstrap.
func (n *Node) setUpNewCluster(ctx context.Context) error {
	if err := n.pg.CreateRoles(ctx); err != nil {
		return err
	}
	var users []postgres.User
	for _, u := range n.cfg.Bootstrap.Users {
		users = append(users, postgres.User{Name: u.Name, Password: u.Password, Options: u.Options})
	}
	if err := n.pg.CreateUsers(ctx, users); err != nil {
		return err
	}
	cmd := n.cfg.Bootstrap.PostBootstrap
	if cmd == "" {
		return nil
	}
	// Patroni's contract: one argument, a connection string for the superuser, with the
	// password in PGPASSFILE.
	host, port, _ := config.SplitHostPort(n.cfg.PostgreSQL.ConnectAddress)
	dsn := fmt.Sprintf("dbname=postgres user=%s host=%s port=%d",
		n.cfg.PostgreSQL.Authentication.Superuser.Username, host, port)
	env := []string{"PGPASSFILE=" + n.cfg.PostgreSQL.Pgpass}
	if err := n.pg.WritePassfile(); err != nil {
		return fmt.Errorf("bootstrap: post_bootstrap: %w", err)
	}
	if err := callbacks.Hook(ctx, n.log, "post_bootstrap", cmd, env, dsn); err != nil {
		return fmt.Errorf("bootstrap: post_bootstrap: %w", err)
	}
	return nil
}

// claimCluster takes the leader lock for the new cluster, writes its system identifier into the
// initialize key and bootstrap.dcs into the config key, and fires on_start as role.
func (n *Node) claimCluster(ctx context.Context, role string) error {
	cd, err := n.pg.ControlData(ctx)
	if err != nil {
		return err
	}
	ok, err := n.acquire(ctx, n.env.settings)
	if err != nil {
		return fmt.Errorf("taking the leader lock after bootstrap: %w", err)
	}
	if !ok {
		return errors.New("taking the leader lock after bootstrap: another member holds it")
	}
	if _, err := n.dcs.Initialize(ctx, cd.SystemIdentifier, false); err != nil {
		return fmt.Errorf("writing the system identifier to initialize: %w", err)
	}
	js, err := n.cfg.Bootstrap.DCS.JSON()
	if err != nil {
		return fmt.Errorf("encoding bootstrap.dcs: %w", err)
	}
	if err := n.dcs.SetConfig(ctx, js, 0); err != nil && !errors.Is(err, dcs.ErrConflict) {
		return fmt.Errorf("writing the config key: %w", err)
	}
	n.post(func() { n.sysID = "" })
	n.log.Info("bootstrapped a new cluster", "system_identifier", cd.SystemIdentifier, "role", role)
	// As Patroni: on_start once the new cluster's leader holds the lock.
	n.setRole(role)
	n.fire("on_start")
	return nil
}

// bootstrapStandby creates the standby leader's data directory from the remote primary (with
// standby_cluster.create_replica_methods) and starts it as the remote's replica.
func (n *Node) bootstrapStandby(ctx context.Context) error {
	up, err := remoteOf(n.env.dyn)
	if err != nil {
		return err
	}
	methods := StandbyMethods(n.env.dyn.Standby().CreateReplicaMethods, n.cfg.PostgreSQL.CreateReplicaMethods)
	var from *postgres.Upstream
	if up.Host != "" {
		from = &up
	}
	if err := n.createReplicaWith(ctx, from, methods); err != nil {
		return fmt.Errorf("bootstrapping the standby cluster: %w", err)
	}
	return n.startReplica(ctx, &up)
}

// customBootstrap runs bootstrap.method's command, which creates the data directory (a restore
// from a backup, for example to a point in time), starts it with the method's recovery settings
// and waits for the end of its recovery: the new cluster is then a primary like one initdb made.
func (n *Node) customBootstrap(ctx context.Context, m *config.BootstrapMethod) error {
	if err := callbacks.Hook(ctx, n.log, "bootstrap method "+m.Name, m.Command, nil,
		m.Args(n.cfg.Scope, n.cfg.PostgreSQL.DataDir)...); err != nil {
		return fmt.Errorf("bootstrap method %s: %w", m.Name, err)
	}
	if st := n.pg.DataDirState(); st != postgres.DataDirValid {
		return fmt.Errorf("bootstrap method %s exited 0 but left no valid data directory (%v)", m.Name, st)
	}
	rec := &postgres.Recovery{KeepExisting: m.KeepExistingRecoveryConf}
	if len(m.RecoveryConf) > 0 {
		rec.Params = map[string]string{}
		for k, v := range m.RecoveryConf {
			rec.Params[k] = config.ParameterString(v)
		}
	}
	err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary, Recovery: rec})
	if err != nil && !errors.Is(err, postgres.ErrStartTimeout) { // a long recovery outlasts pg_ctl_timeout
		return fmt.Errorf("bootstrap method %s: %w", m.Name, err)
	}
	if err := n.awaitEndOfRecovery(ctx); err != nil {
		return fmt.Errorf("bootstrap method %s: %w", m.Name, err)
	}
	return n.pg.EndRecovery(ctx)
}

// awaitEndOfRecovery waits until the restored server leaves recovery (Patroni: "waiting for end
// of recovery after bootstrap"). A server that exits (a recovery target never reached) fails the
// bootstrap; one paused at its target is waited for, with a warning on how to go on.
func (n *Node) awaitEndOfRecovery(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var warned time.Time
	for {
		if !n.pg.Running() {
			return errors.New("postgres exited during the recovery of the restored data directory (see its log: was the recovery target reached?)")
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := n.pg.State(qctx)
		cancel()
		switch {
		case err == nil && !st.InRecovery:
			n.log.Info("the restored data directory finished its recovery")
			return nil
		case err == nil && st.ReplayPaused && n.now().Sub(warned) > time.Minute:
			warned = n.now()
			n.log.Warn("recovery of the restored data directory is paused (at its recovery target?): " +
				"set recovery_target_action: promote in the bootstrap method's recovery_conf, or end it with SELECT pg_promote()")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the end of recovery: %w", ctx.Err())
		case <-tick.C:
		}
	}
}
