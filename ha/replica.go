package ha

// Creating a replica's data directory: postgresql.create_replica_methods in order (a long action).

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tusker-ha/tusker/callbacks"
	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/postgres"
)

// ReplicaMethods are the methods to try for a new replica, in order: the configured ones, or
// basebackup alone; with no upstream (no leader running) only those that need none. Pure.
func ReplicaMethods(configured []config.ReplicaMethod, haveUpstream bool) []config.ReplicaMethod {
	methods := configured
	if len(methods) == 0 {
		methods = []config.ReplicaMethod{{Name: config.BasebackupMethod}}
	}
	if haveUpstream {
		return methods
	}
	var out []config.ReplicaMethod
	for _, m := range methods {
		if m.WorksWithoutLeader() {
			out = append(out, m)
		}
	}
	return out
}

// RemoveBeforeClone: a clone that replaces the data directory (remove) empties it first, unless
// the first method keeps data (pgbackrest --delta restores only what differs). Every other
// method empties it itself. Pure.
func RemoveBeforeClone(methods []config.ReplicaMethod, remove bool) bool {
	return remove && (len(methods) == 0 || !methods[0].KeepData)
}

// createReplica makes the data directory of a new replica with the first method that succeeds;
// up is the member to copy from (nil: no leader runs). A method that fails leaves the data
// directory empty again (but with keep_data) before the next one is tried; when all fail, the
// next cycle tries again from the first.
func (n *Node) createReplica(ctx context.Context, up *postgres.Upstream) error {
	return n.createReplicaWith(ctx, up, n.cfg.PostgreSQL.CreateReplicaMethods)
}

// StandbyMethods are the methods that create a standby leader's data directory: the names of
// standby_cluster.create_replica_methods, each the method of postgresql.create_replica_methods
// of that name (its section), or a command of that name; none: basebackup. Pure.
func StandbyMethods(names []string, configured []config.ReplicaMethod) []config.ReplicaMethod {
	var out []config.ReplicaMethod
	for _, name := range names {
		m := config.ReplicaMethod{Name: name, Command: name}
		if i := slices.IndexFunc(configured, func(c config.ReplicaMethod) bool { return c.Name == name }); i >= 0 {
			m = configured[i]
		}
		if name == config.BasebackupMethod {
			m = config.ReplicaMethod{Name: name}
		}
		// The remote primary is not this cluster's leader: any method may run without one.
		m.NoLeader = m.NoLeader || !m.Builtin()
		out = append(out, m)
	}
	return out
}

// createReplicaWith is createReplica with the methods given (none configured: basebackup).
func (n *Node) createReplicaWith(ctx context.Context, up *postgres.Upstream, configured []config.ReplicaMethod) error {
	methods := ReplicaMethods(configured, up != nil)
	if len(methods) == 0 {
		return errors.New("creating a replica: no leader to copy from, and no method of create_replica_methods works without one (no_leader)")
	}
	var errs []error
	for _, m := range methods {
		var err error
		if m.Builtin() {
			// pg_basebackup needs an empty directory: what an earlier keep_data method left goes
			// (Patroni's basebackup empties it too).
			if n.pg.DataDirState() != postgres.DataDirEmpty {
				if err := n.pg.RemoveDataDir(); err != nil {
					return err
				}
			}
			err = n.pg.Basebackup(ctx, *up)
		} else {
			err = n.runReplicaMethod(ctx, m, up)
		}
		if err == nil {
			n.log.Info("replica created", "method", m.Name)
			return nil
		}
		n.log.Error("replica creation method failed", "method", m.Name, "err", err)
		errs = append(errs, fmt.Errorf("method %s: %w", m.Name, err))
		if ctx.Err() != nil {
			break
		}
	}
	// A directory that is neither empty nor valid (a keep_data method's remains) would block this
	// member for good: Decide never touches an invalid data directory.
	if n.pg.DataDirState() == postgres.DataDirInvalid {
		n.log.Warn("emptying what the failed replica methods left: it is no valid data directory")
		if err := n.pg.RemoveDataDir(); err != nil {
			errs = append(errs, err)
		}
	}
	return fmt.Errorf("creating a replica: every method failed: %w", errors.Join(errs...))
}

// runReplicaMethod runs a custom method's command, as Patroni calls it: the section's options
// and, unless no_params, --scope, --role=replica, --datadir and --connstring (a libpq
// connection string for the replication role on the upstream, "" with no upstream; its password
// is in PGPASSFILE).
func (n *Node) runReplicaMethod(ctx context.Context, m config.ReplicaMethod, up *postgres.Upstream) error {
	if n.pg.Running() {
		return errors.New("postgres is running in the data directory")
	}
	if !m.KeepData && n.pg.DataDirState() != postgres.DataDirEmpty {
		if err := n.pg.RemoveDataDir(); err != nil {
			return err
		}
	}
	if err := n.pg.WritePassfile(); err != nil {
		return err
	}
	conn := ""
	if up != nil {
		a := n.cfg.PostgreSQL.Authentication
		user := a.Replication.Username
		if user == "" {
			user = a.Superuser.Username
		}
		conn = fmt.Sprintf("dbname=postgres user=%s host=%s port=%d", user, up.Host, up.Port)
	}
	env := []string{"PGPASSFILE=" + n.cfg.PostgreSQL.Pgpass}
	args := m.Args(n.cfg.Scope, n.cfg.PostgreSQL.DataDir, conn)
	err := callbacks.Hook(ctx, n.log, "replica method "+m.Name, m.Command, env, args...)
	if err == nil {
		if err = n.pg.MarkStandby(); err == nil {
			return nil
		}
		err = fmt.Errorf("the command exited 0 but: %w", err)
	}
	if !m.KeepData && n.pg.DataDirState() != postgres.DataDirEmpty {
		if rerr := n.pg.RemoveDataDir(); rerr != nil {
			n.log.Error("removing what the failed replica method left", "method", m.Name, "err", rerr)
		}
	}
	return err
}
