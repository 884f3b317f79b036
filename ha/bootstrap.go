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
	if err := n.pg.Initdb(ctx, n.cfg.Bootstrap.Initdb); err != nil {
		return err
	}
	if err := n.pg.Start(ctx, postgres.StartOptions{Role: postgres.Primary}); err != nil {
		return err
	}
	if err := n.pg.CreateRoles(ctx); err != nil {
		return err
	}
	if cmd := n.cfg.Bootstrap.PostBootstrap; cmd != "" {
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
	}
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
	n.log.Info("bootstrapped a new cluster", "system_identifier", cd.SystemIdentifier)
	// As Patroni: on_start once the new cluster's leader holds the lock.
	n.setRole("primary")
	n.fire("on_start")
	return nil
}
