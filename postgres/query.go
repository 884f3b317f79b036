package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// State is what the HA loop needs to know about the running instance.
type State struct {
	InRecovery          bool
	Timeline            int
	WALPosition         int64 // primary: pg_current_wal_flush_lsn(); replica: max(receive, replay)
	ReceiveLSN          int64
	ReplayLSN           int64
	ReplayTimestamp     *time.Time
	ReplayPaused        bool
	Streaming           bool   // pg_stat_wal_receiver.status = 'streaming'
	LatestEndLSN        int64  // pg_stat_wal_receiver.latest_end_lsn: the upstream's position last reported; 0 when unknown
	UpstreamHost        string // sender_host of the WAL receiver, if any
	PostmasterStartTime time.Time
	ServerVersion       int
	Replication         []ReplicationRow // pg_stat_replication
	PendingRestart      bool             // some pg_settings.pending_restart
	// SyncStandbyNames is synchronous_standby_names as this session sees it (after a reload,
	// as soon as the session processed the SIGHUP).
	SyncStandbyNames string
}

// ReplicationRow is one row of pg_stat_replication.
type ReplicationRow struct {
	PID             int
	Usename         string
	ApplicationName string
	ClientAddr      string
	State           string
	SyncState       string
	SyncPriority    int
	SentLSN         int64
	WriteLSN        int64
	FlushLSN        int64
	ReplayLSN       int64
}

// Recovery targets (recovery_target_timeline...) are postmaster-context settings that tusker
// writes for a standby and drops when it is promoted; their "pending" change on a promoted primary
// means nothing (they only apply to recovery), so they never make a restart pending.
const stateSQL = `
SELECT r.rec,
  CASE WHEN NOT r.rec THEN ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  CASE WHEN NOT r.rec THEN (pg_catalog.pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint END,
  CASE WHEN r.rec THEN (pg_catalog.pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::bigint END,
  CASE WHEN r.rec THEN (pg_catalog.pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint END,
  CASE WHEN r.rec THEN pg_catalog.pg_last_xact_replay_timestamp() END,
  CASE WHEN r.rec THEN pg_catalog.pg_is_wal_replay_paused() ELSE false END,
  w.status, w.received_tli, w.sender_host,
  (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()),
  pg_catalog.pg_postmaster_start_time(),
  pg_catalog.current_setting('server_version_num')::int,
  EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE pending_restart AND name NOT LIKE 'recovery\_target%'),
  (w.latest_end_lsn - '0/0'::pg_lsn)::bigint,
  pg_catalog.current_setting('synchronous_standby_names')
FROM (SELECT pg_catalog.pg_is_in_recovery() AS rec) r
LEFT JOIN pg_catalog.pg_stat_wal_receiver w ON true`

const replicationSQL = `
SELECT pid, COALESCE(usename::text, ''), COALESCE(application_name, ''), COALESCE(host(client_addr), ''),
  COALESCE(state, ''), COALESCE(sync_state, ''), COALESCE(sync_priority, 0),
  COALESCE((sent_lsn - '0/0'::pg_lsn)::bigint, 0), COALESCE((write_lsn - '0/0'::pg_lsn)::bigint, 0),
  COALESCE((flush_lsn - '0/0'::pg_lsn)::bigint, 0), COALESCE((replay_lsn - '0/0'::pg_lsn)::bigint, 0)
FROM pg_catalog.pg_stat_replication ORDER BY application_name, pid`

// localTarget is where local clients reach the running server: the unix socket directory, else
// the first listen address, from postmaster.pid when it says, else from the configuration.
func localTarget(cfg Config, l listenAddr) (string, int) {
	if pf, err := readPidFile(cfg.DataDir); err == nil && pf.Port > 0 {
		if pf.SocketDir != "" {
			return pf.SocketDir, pf.Port
		}
		if pf.Listen != "" {
			return localHost(pf.Listen), pf.Port
		}
	}
	sock, ok := cfg.Parameters["unix_socket_directories"]
	if !ok {
		sock = defaultSocketDir()
	}
	sock = strings.TrimSpace(strings.Split(sock, ",")[0])
	if strings.HasPrefix(sock, "/") {
		return sock, l.port
	}
	return localHost(l.hosts[0]), l.port
}

// connConfig builds a pgx configuration; extra are more keyword/value pairs.
func connConfig(cfg Config, host string, port int, a Auth, db string, extra ...string) (*pgx.ConnConfig, error) {
	ssl := "prefer"
	if strings.HasPrefix(host, "/") {
		ssl = "disable"
	}
	kv := append([]string{"host", host, "port", strconv.Itoa(port), "user", a.Username, "dbname", db,
		"sslmode", ssl, "passfile", cfg.Pgpass, "connect_timeout", "5"}, extra...)
	cc, err := pgx.ParseConfig(conninfo(kv...))
	if err != nil {
		return nil, fmt.Errorf("connection settings for %s:%d: %w", host, port, err)
	}
	if a.Password != "" {
		cc.Password = a.Password
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "tusker"
	}
	return cc, nil
}

// connect opens a superuser connection to the local server.
func (p *Postgres) connect(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, l := p.config()
	host, port := localTarget(cfg, l)
	cc, err := connConfig(cfg, host, port, cfg.Superuser, db)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("connecting to local postgres at %s:%d as %s: %w", host, port, cfg.Superuser.Username, err)
	}
	return conn, nil
}

// Connect opens a new superuser connection to the local server's "postgres" database; the caller
// closes it.
func (p *Postgres) Connect(ctx context.Context) (*pgx.Conn, error) {
	if !p.Running() {
		return nil, fmt.Errorf("connecting to local postgres: %w", ErrNotRunning)
	}
	return p.connect(ctx, "postgres")
}

// withConn runs fn on a fresh superuser connection.
func (p *Postgres) withConn(ctx context.Context, what string, fn func(*pgx.Conn) error) error {
	conn, err := p.Connect(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer closeConn(conn)
	if err := fn(conn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// releaseConn closes the kept connection unless a State call holds it past ctx or 2s.
func (p *Postgres) releaseConn(ctx context.Context) {
	select {
	case p.connSem <- struct{}{}:
		p.dropConnLocked()
		<-p.connSem
		return
	default:
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case p.connSem <- struct{}{}:
		p.dropConnLocked()
		<-p.connSem
	case <-ctx.Done():
	case <-t.C:
	}
}

func (p *Postgres) dropConnLocked() {
	if p.conn != nil {
		closeConn(p.conn)
		p.conn, p.connPID = nil, 0
	}
}

// State queries the running instance in one round trip on a kept superuser connection. It fails
// at once with ErrNotRunning when no postmaster runs, and reconnects after a restart.
func (p *Postgres) State(ctx context.Context) (State, error) {
	var st State
	err := p.withKeptConn(ctx, "querying postgres state", func(conn *pgx.Conn) (err error) {
		st, err = queryState(ctx, conn)
		return err
	})
	return st, err
}

// withKeptConn runs fn on the kept superuser connection (connecting when there is none, or when
// the postmaster changed): the queries of every HA cycle need no new backend each time. A
// failing fn drops the connection, so that the next call starts afresh.
func (p *Postgres) withKeptConn(ctx context.Context, what string, fn func(*pgx.Conn) error) error {
	pid := p.PostmasterPID()
	if pid <= 0 {
		return fmt.Errorf("%s: %w", what, ErrNotRunning)
	}
	select {
	case p.connSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	defer func() { <-p.connSem }()
	if p.conn != nil && (p.conn.IsClosed() || p.connPID != pid) {
		p.dropConnLocked()
	}
	if p.conn == nil {
		conn, err := p.connect(ctx, "postgres")
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		p.conn, p.connPID = conn, pid
	}
	if err := fn(p.conn); err != nil {
		p.dropConnLocked()
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func queryState(ctx context.Context, conn *pgx.Conn) (State, error) {
	b := &pgx.Batch{}
	b.Queue(stateSQL)
	b.Queue(replicationSQL)
	br := conn.SendBatch(ctx, b)
	defer br.Close()

	var (
		st                                    State
		tlPrimary, receivedTLI, checkpointTLI *int32
		flush, recv, replay, latestEnd        *int64
		replayTS                              *time.Time
		paused                                *bool
		status, senderHost                    *string
		version                               int32
	)
	err := br.QueryRow().Scan(&st.InRecovery, &tlPrimary, &flush, &recv, &replay, &replayTS, &paused,
		&status, &receivedTLI, &senderHost, &checkpointTLI, &st.PostmasterStartTime, &version, &st.PendingRestart, &latestEnd, &st.SyncStandbyNames)
	if err != nil {
		return State{}, err
	}
	st.ServerVersion = int(version)
	st.ReplayTimestamp = replayTS
	if paused != nil {
		st.ReplayPaused = *paused
	}
	if status != nil {
		st.Streaming = *status == "streaming"
	}
	if senderHost != nil {
		st.UpstreamHost = *senderHost
	}
	if recv != nil {
		st.ReceiveLSN = *recv
	}
	if latestEnd != nil {
		st.LatestEndLSN = *latestEnd
	}
	if replay != nil {
		st.ReplayLSN = *replay
	}
	if st.InRecovery {
		st.WALPosition = max(st.ReceiveLSN, st.ReplayLSN)
		if receivedTLI != nil && *receivedTLI > 0 {
			st.Timeline = int(*receivedTLI)
		} else if checkpointTLI != nil {
			st.Timeline = int(*checkpointTLI)
		}
	} else {
		if flush != nil {
			st.WALPosition = *flush
		}
		if tlPrimary != nil {
			st.Timeline = int(*tlPrimary)
		}
	}
	rows, err := br.Query()
	if err != nil {
		return State{}, err
	}
	for rows.Next() {
		var r ReplicationRow
		var pid, prio int32
		if err := rows.Scan(&pid, &r.Usename, &r.ApplicationName, &r.ClientAddr, &r.State, &r.SyncState, &prio,
			&r.SentLSN, &r.WriteLSN, &r.FlushLSN, &r.ReplayLSN); err != nil {
			rows.Close()
			return State{}, err
		}
		r.PID, r.SyncPriority = int(pid), int(prio)
		st.Replication = append(st.Replication, r)
	}
	if err := rows.Err(); err != nil {
		return State{}, err
	}
	return st, br.Close()
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// quoteLiteral quotes an SQL string literal independently of standard_conforming_strings.
func quoteLiteral(s string) string {
	if strings.Contains(s, `\`) {
		return `E'` + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + `'`
	}
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// rewindGrants are the functions pg_rewind needs on the source server.
var rewindGrants = []string{
	"pg_catalog.pg_ls_dir(text, boolean, boolean)",
	"pg_catalog.pg_stat_file(text, boolean)",
	"pg_catalog.pg_read_binary_file(text)",
	"pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
}

// CreateRoles creates or updates, on the running primary, the replication role (LOGIN
// REPLICATION) and the rewind role (LOGIN plus EXECUTE on the functions pg_rewind uses). A role
// with the superuser's name or an empty name is skipped. Passwords are kept out of the server log.
func (p *Postgres) CreateRoles(ctx context.Context) error {
	cfg, _ := p.config()
	return p.withConn(ctx, "creating roles", func(conn *pgx.Conn) error {
		var rec bool
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&rec); err != nil {
			return err
		}
		if rec {
			return errors.New("server is in recovery, not a primary")
		}
		for _, s := range []string{"SET log_statement TO 'none'", "SET log_min_duration_statement TO -1",
			"SET log_min_error_statement TO 'panic'"} {
			if _, err := conn.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		ensure := func(a Auth, replication bool) error {
			var exists bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)",
				a.Username).Scan(&exists); err != nil {
				return fmt.Errorf("looking up role %s: %w", a.Username, err)
			}
			verb := "CREATE"
			if exists {
				verb = "ALTER"
			}
			opts := "LOGIN"
			if replication {
				opts += " REPLICATION"
			}
			if a.Password != "" {
				opts += " PASSWORD " + quoteLiteral(a.Password)
			}
			if _, err := conn.Exec(ctx, verb+" ROLE "+quoteIdent(a.Username)+" WITH "+opts); err != nil {
				return fmt.Errorf("%s ROLE %s: %w", verb, a.Username, err)
			}
			cfg.Logger.Info("role ensured", "role", a.Username, "action", strings.ToLower(verb), "replication", replication)
			return nil
		}
		su := cfg.Superuser.Username
		// The superuser's password: initdb set it, but a cluster restored from a backup has the
		// one of the cluster it was taken from (Patroni sets it after either bootstrap).
		if cfg.Superuser.Password != "" {
			if _, err := conn.Exec(ctx, "ALTER ROLE "+quoteIdent(su)+" WITH PASSWORD "+quoteLiteral(cfg.Superuser.Password)); err != nil {
				return fmt.Errorf("ALTER ROLE %s: %w", su, err)
			}
		}
		if r := cfg.Replication; r.Username != "" && r.Username != su {
			if err := ensure(r, true); err != nil {
				return err
			}
		}
		if r := cfg.Rewind; r.Username != "" && r.Username != su {
			if err := ensure(r, r.Username == cfg.Replication.Username); err != nil {
				return err
			}
			for _, f := range rewindGrants {
				if _, err := conn.Exec(ctx, "GRANT EXECUTE ON FUNCTION "+f+" TO "+quoteIdent(r.Username)); err != nil {
					return fmt.Errorf("granting %s to %s: %w", f, r.Username, err)
				}
			}
		}
		return nil
	})
}

// User is a role to create after the bootstrap (bootstrap.users), with options already checked
// (CREATE ROLE keywords, CONNECTION LIMIT n, VALID UNTIL 'timestamp').
type User struct {
	Name, Password string
	Options        []string
}

// CreateUsers creates or alters each user (LOGIN unless NOLOGIN is given). tusker's own roles
// (superuser, replication, rewind) are skipped: CreateRoles manages them.
func (p *Postgres) CreateUsers(ctx context.Context, users []User) error {
	if len(users) == 0 {
		return nil
	}
	cfg, _ := p.config()
	return p.withConn(ctx, "creating bootstrap.users", func(conn *pgx.Conn) error {
		if _, err := conn.Exec(ctx, "SET log_statement TO 'none'"); err != nil {
			return err
		}
		for _, u := range users {
			if u.Name == cfg.Superuser.Username || u.Name == cfg.Replication.Username || u.Name == cfg.Rewind.Username {
				continue
			}
			opts := slices.Clone(u.Options)
			if !slices.Contains(opts, "LOGIN") && !slices.Contains(opts, "NOLOGIN") {
				opts = append(opts, "LOGIN")
			}
			if u.Password != "" {
				opts = append(opts, "PASSWORD "+quoteLiteral(u.Password))
			}
			var exists bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", u.Name).Scan(&exists); err != nil {
				return fmt.Errorf("looking up role %s: %w", u.Name, err)
			}
			verb := map[bool]string{true: "ALTER", false: "CREATE"}[exists]
			if _, err := conn.Exec(ctx, verb+" ROLE "+quoteIdent(u.Name)+" WITH "+strings.Join(opts, " ")); err != nil {
				return fmt.Errorf("%s ROLE %s: %w", verb, u.Name, err)
			}
			cfg.Logger.Info("bootstrap user ensured", "role", u.Name, "action", strings.ToLower(verb))
		}
		return nil
	})
}

// EndRecovery writes the configuration of a restored server that has finished its recovery as
// a plain primary's (without the recovery settings and signal files of its start) and reloads it.
func (p *Postgres) EndRecovery(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ending recovery: %w", err)
	}
	if err := p.WriteConfig(StartOptions{Role: Primary}); err != nil {
		return fmt.Errorf("ending recovery: %w", err)
	}
	return p.sighup()
}

// promoteNudge is how long a promotion may look stuck before the startup process is woken.
const promoteNudge = 100 * time.Millisecond

// Promote promotes the running standby (pg_promote, waiting) and returns once it is out of
// recovery; the generated configuration becomes the primary's (no standby.signal, no
// primary_conninfo) for later starts. A server already out of recovery is left alone. It does not
// CHECKPOINT; do that next so that pg_rewind against this server sees the new timeline.
func (p *Postgres) Promote(ctx context.Context) error {
	err := p.withConn(ctx, "promoting postgres", func(conn *pgx.Conn) error {
		for {
			var rec bool
			if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&rec); err != nil {
				return err
			}
			if !rec {
				return nil
			}
			wait := 60
			if dl, ok := ctx.Deadline(); ok {
				wait = max(1, min(wait, int(time.Until(dl).Seconds())))
			}
			// pg_promote(wait => true) polls ten times a second; polling ourselves every 10 ms
			// takes up to 90 ms off every promotion (the write gap of a switchover).
			var ok bool
			if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_promote(false)").Scan(&ok); err != nil {
				return err
			}
			deadline := time.Now().Add(time.Duration(wait) * time.Second)
			nudged := time.Now()
			for rec && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
				if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&rec); err != nil {
					return err
				}
				// A promote request that the startup process notices while its WAL receiver is
				// still starting (relaunched after a failed attempt to reach the lost primary, as
				// happens once a second during a handover) is acted on only after the startup
				// process has slept out wal_retrieve_retry_interval: nothing wakes that sleep. A
				// reload does (the startup process's SIGHUP handler sets its latch), and the
				// promotion goes on at once. Seen as a 0.9 s stall of a 1 s interval in the image
				// tests; PostgreSQL's default interval is 5 s.
				if rec && time.Since(nudged) >= promoteNudge {
					nudged = time.Now()
					if _, err := conn.Exec(ctx, "SELECT pg_catalog.pg_reload_conf()"); err != nil {
						return err
					}
				}
			}
			if rec {
				p.log().Warn("promotion not finished yet; waiting", "waited_s", wait)
			}
		}
	})
	if err != nil {
		return err
	}
	p.log().Info("postgres promoted")
	if err := p.WriteConfig(StartOptions{Role: Primary}); err != nil {
		return fmt.Errorf("promoted, but rewriting the configuration failed: %w", err)
	}
	return nil
}

// Reload rewrites the configuration for the current options and, if postgres runs, sends SIGHUP
// to the postmaster (pg_reload_conf). When postgres is stopped the files are still rewritten.
func (p *Postgres) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("reloading postgres: %w", err)
	}
	if err := p.WriteConfig(p.Options()); err != nil {
		return fmt.Errorf("reloading postgres: %w", err)
	}
	return p.sighup()
}

func (p *Postgres) sighup() error {
	pid := p.PostmasterPID()
	if pid <= 0 {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("reloading postgres (pid %d): %w", pid, err)
	}
	return nil
}

// Follow points the replica at a new upstream: it rewrites primary_conninfo and
// primary_slot_name and reloads (PostgreSQL 13+ restarts the WAL receiver). A running primary is
// refused. When postgres is stopped only the files are rewritten.
func (p *Postgres) Follow(ctx context.Context, up Upstream) error {
	opts := StartOptions{Role: Replica, Upstream: &up}
	if err := opts.validate(); err != nil {
		return fmt.Errorf("following %s: %w", up.Name, err)
	}
	if p.Running() {
		err := p.withConn(ctx, "following "+up.Name, func(conn *pgx.Conn) error {
			var rec bool
			if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_is_in_recovery()").Scan(&rec); err != nil {
				return err
			}
			if !rec {
				return errors.New("postgres runs as a primary; stop it and start it as a replica")
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if err := p.WriteConfig(opts); err != nil {
		return fmt.Errorf("following %s: %w", up.Name, err)
	}
	p.log().Info("following new upstream", "upstream", up.String())
	return p.sighup()
}

// Checkpoint runs CHECKPOINT.
func (p *Postgres) Checkpoint(ctx context.Context) error {
	return p.withConn(ctx, "checkpoint", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CHECKPOINT")
		return err
	})
}

// PendingRestartSettings lists the parameters whose changed value needs a restart, with the value
// postgres runs with (pg_settings.setting, with its unit when it has one).
func (p *Postgres) PendingRestartSettings(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	err := p.withConn(ctx, "reading pending_restart settings", func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, "SELECT name, setting, COALESCE(unit, '') FROM pg_catalog.pg_settings WHERE pending_restart AND name NOT LIKE 'recovery\\_target%'")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name, setting, unit string
			if err := rows.Scan(&name, &setting, &unit); err != nil {
				return err
			}
			if unit != "" && unit[0] >= '0' && unit[0] <= '9' {
				unit = "" // "8kB" style units multiply the setting; leave the raw number
			}
			out[name] = setting + unit
		}
		return rows.Err()
	})
	return out, err
}
