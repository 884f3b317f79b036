package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tusker-ha/tusker/patroni"
)

// capBuffer keeps the last max bytes written to it.
type capBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (c *capBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.b = append(c.b, p...)
	if len(c.b) > c.max {
		c.b = append(c.b[:0], c.b[len(c.b)-c.max:]...)
	}
	return len(p), nil
}

func (c *capBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSpace(string(c.b))
}

// toolEnv is the environment of the libpq tools we run: processEnv, with the passfile as their
// only source of passwords.
func toolEnv(cfg Config, extra ...string) []string {
	env := []string{}
	for _, kv := range processEnv() {
		if strings.HasPrefix(kv, "PGPASSFILE=") || strings.HasPrefix(kv, "PGPASSWORD=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PGPASSFILE="+cfg.Pgpass, "PGCONNECT_TIMEOUT=10")
	return append(env, extra...)
}

// runTool runs a PostgreSQL binary; ctx cancellation sends SIGTERM, then SIGKILL after 10s.
// The returned string is the tail of its combined output.
func (p *Postgres) runTool(ctx context.Context, cfg Config, stdin io.Reader, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin(cfg, name), args...)
	out := &capBuffer{max: 64 * 1024}
	cmd.Stdout, cmd.Stderr, cmd.Stdin = out, out, stdin
	cmd.Env = env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return out.String(), err
}

// Initdb runs initdb on the data directory with args (e.g. "--encoding=UTF8",
// "--data-checksums"). The superuser name and password come from Config.Superuser (--username,
// --pwfile with a temporary file removed afterwards) unless args already set them.
func (p *Postgres) Initdb(ctx context.Context, args []string) error {
	cfg, _ := p.config()
	if st := p.DataDirState(); st != DataDirEmpty {
		return fmt.Errorf("initdb in %s: data directory is %v", cfg.DataDir, st)
	}
	has := func(prefixes ...string) bool {
		for _, a := range args {
			for _, pre := range prefixes {
				if a == pre || strings.HasPrefix(a, pre+"=") || (len(pre) == 2 && strings.HasPrefix(a, pre)) {
					return true
				}
			}
		}
		return false
	}
	full := []string{"-D", cfg.DataDir}
	if !has("--username", "-U") {
		full = append(full, "--username="+cfg.Superuser.Username)
	}
	if cfg.Superuser.Password != "" && !has("--pwfile", "--pwprompt", "-W") {
		f, err := os.CreateTemp("", "tusker-pwfile-*")
		if err != nil {
			return fmt.Errorf("initdb in %s: password file: %w", cfg.DataDir, err)
		}
		defer os.Remove(f.Name())
		_, werr := f.WriteString(cfg.Superuser.Password + "\n")
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("initdb in %s: password file: %w", cfg.DataDir, werr)
		}
		full = append(full, "--pwfile="+f.Name())
	}
	full = append(full, args...)
	if err := os.MkdirAll(filepath.Dir(cfg.DataDir), 0o755); err != nil {
		return fmt.Errorf("initdb in %s: %w", cfg.DataDir, err)
	}
	cfg.Logger.Info("running initdb", "data_dir", cfg.DataDir, "args", args)
	out, err := p.runTool(ctx, cfg, nil, processEnv(), "initdb", full...)
	if err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", cfg.DataDir, err, out)
	}
	return nil
}

// Basebackup clones the data directory from up with pg_basebackup (-X stream -c fast), as the
// replication user with the password from the passfile. The data directory must be empty; on
// failure whatever pg_basebackup wrote is removed again.
func (p *Postgres) Basebackup(ctx context.Context, up Upstream) error {
	cfg, _ := p.config()
	if p.Running() {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, ErrAlreadyRunning)
	}
	if st := p.DataDirState(); st != DataDirEmpty {
		return fmt.Errorf("cloning %s from %s: data directory is %v", cfg.DataDir, up.Name, st)
	}
	if entries, err := os.ReadDir(cfg.DataDir); err == nil && len(entries) > 0 {
		return fmt.Errorf("cloning %s from %s: directory holds %s; pg_basebackup needs it empty", cfg.DataDir, up.Name, entries[0].Name())
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	if err := p.writePassfile(cfg); err != nil {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	user := cfg.Replication.Username
	if user == "" {
		user = cfg.Superuser.Username
	}
	cfg.Logger.Info("cloning data directory with pg_basebackup", "from", up.String(), "data_dir", cfg.DataDir)
	start := time.Now()
	args := append([]string{"-D", cfg.DataDir, "-X", "stream", "-c", "fast", "--no-password",
		"-h", up.Host, "-p", strconv.Itoa(up.Port), "-U", user}, cfg.BasebackupOptions...)
	out, err := p.runTool(ctx, cfg, nil, toolEnv(cfg, "PGAPPNAME=tusker-basebackup"), "pg_basebackup", args...)
	if err != nil {
		if rerr := removeContents(cfg.DataDir); rerr != nil {
			cfg.Logger.Error("removing the partial clone failed", "err", rerr)
		}
		return fmt.Errorf("pg_basebackup of %s from %s: %w\n%s", cfg.DataDir, up.String(), err, out)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	// The copy's pg_control says "in production" (the primary's state); standby.signal marks it as
	// a standby's from now on, before it is first started (StandbySignal).
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("cloning %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	cfg.Logger.Info("clone finished", "from", up.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// MarkStandby marks a data directory a replica creation method made as a standby's, before it is
// first started (as Basebackup does): standby.signal, and no recovery.signal.
func (p *Postgres) MarkStandby() error {
	cfg, _ := p.config()
	if st := p.DataDirState(); st != DataDirValid {
		return fmt.Errorf("marking %s as a standby's: data directory is %v", cfg.DataDir, st)
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("marking %s as a standby's: %w", cfg.DataDir, err)
	}
	if err := os.Remove(filepath.Join(cfg.DataDir, "recovery.signal")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("marking %s as a standby's: %w", cfg.DataDir, err)
	}
	return nil
}

// CanRewind reports whether pg_rewind can be used on the data directory: a working pg_rewind
// and data checksums or wal_log_hints=on in pg_control. The string says why not.
func (p *Postgres) CanRewind(ctx context.Context) (bool, string) {
	cfg, _ := p.config()
	if out, err := p.runTool(ctx, cfg, nil, processEnv(), "pg_rewind", "--version"); err != nil {
		return false, fmt.Sprintf("pg_rewind in %s does not work: %v %s", cfg.BinDir, err, out)
	}
	cd, err := p.ControlData(ctx)
	if err != nil {
		return false, err.Error()
	}
	if !cd.DataChecksums && !cd.WalLogHints {
		return false, "neither data checksums nor wal_log_hints are enabled in pg_control"
	}
	return true, ""
}

// TimelineHistoryEntry is one line of a timeline history file: the server left Timeline at
// SwitchPoint.
type TimelineHistoryEntry struct {
	Timeline    int
	SwitchPoint int64
	Reason      string
}

// ParseTimelineHistory parses the contents of a NNNNNNNN.history file.
func ParseTimelineHistory(content string) ([]TimelineHistoryEntry, error) {
	var out []TimelineHistoryEntry
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("timeline history line %q: too few fields", line)
		}
		tl, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		lsn, err := patroni.ParseLSN(f[1])
		if err != nil {
			return nil, fmt.Errorf("timeline history line %q: %w", line, err)
		}
		e := TimelineHistoryEntry{Timeline: tl, SwitchPoint: lsn}
		if len(f) > 2 {
			e.Reason = strings.Join(f[2:], " ")
		}
		out = append(out, e)
	}
	return out, nil
}

// upstreamTimeline asks up, over a physical replication connection as the replication user, for
// its system identifier, timeline and (if > 1) timeline history.
func (p *Postgres) upstreamTimeline(ctx context.Context, cfg Config, up Upstream) (sysid string, tl int, hist []TimelineHistoryEntry, err error) {
	a := cfg.Replication
	if a.Username == "" {
		a = cfg.Superuser
	}
	cc, err := connConfig(cfg, up.Host, up.Port, a, "postgres", "replication", "true")
	if err != nil {
		return "", 0, nil, err
	}
	conn, err := pgconn.ConnectConfig(ctx, &cc.Config)
	if err != nil {
		return "", 0, nil, fmt.Errorf("replication connection to %s as %s: %w", up.String(), a.Username, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	res, err := conn.Exec(ctx, "IDENTIFY_SYSTEM").ReadAll()
	if err != nil {
		return "", 0, nil, fmt.Errorf("IDENTIFY_SYSTEM on %s: %w", up.String(), err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
		return "", 0, nil, fmt.Errorf("IDENTIFY_SYSTEM on %s: unexpected result", up.String())
	}
	sysid = string(res[0].Rows[0][0])
	if tl, err = strconv.Atoi(string(res[0].Rows[0][1])); err != nil {
		return "", 0, nil, fmt.Errorf("IDENTIFY_SYSTEM on %s: timeline %q: %w", up.String(), res[0].Rows[0][1], err)
	}
	if tl <= 1 {
		return sysid, tl, nil, nil
	}
	res, err = conn.Exec(ctx, "TIMELINE_HISTORY "+strconv.Itoa(tl)).ReadAll()
	if err != nil {
		return "", 0, nil, fmt.Errorf("TIMELINE_HISTORY %d on %s: %w", tl, up.String(), err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) < 2 {
		return "", 0, nil, fmt.Errorf("TIMELINE_HISTORY %d on %s: unexpected result", tl, up.String())
	}
	hist, err = ParseTimelineHistory(string(res[0].Rows[0][1]))
	if err != nil {
		return "", 0, nil, fmt.Errorf("TIMELINE_HISTORY %d on %s: %w", tl, up.String(), err)
	}
	return sysid, tl, hist, nil
}

// localWALEnd describes how far the stopped local data directory's history goes.
type localWALEnd struct {
	timeline int
	lsn      int64
	// replayed: lsn is an end position (minimum recovery point of a standby); otherwise lsn is
	// the start of the last WAL record (a former primary).
	replayed bool
}

func (p *Postgres) localEnd(ctx context.Context, cfg Config, cd ControlData) (localWALEnd, error) {
	switch cd.State {
	case "shut down in recovery", "in archive recovery":
		if cd.MinRecoveryEndLSN != 0 && cd.MinRecoveryEndTimeline != 0 {
			return localWALEnd{timeline: cd.MinRecoveryEndTimeline, lsn: cd.MinRecoveryEndLSN, replayed: true}, nil
		}
	}
	if cd.State == "shut down" || cd.State == "shut down in recovery" {
		// The shutdown checkpoint is the last record a cleanly stopped primary wrote.
		return localWALEnd{timeline: cd.Timeline, lsn: cd.CheckpointLSN}, nil
	}
	// Not shut down cleanly: the WAL goes on after the last checkpoint; find its last record.
	last, err := p.lastWALRecord(ctx, cfg, cd.Timeline, cd.CheckpointLSN)
	if err != nil {
		return localWALEnd{}, err
	}
	return localWALEnd{timeline: cd.Timeline, lsn: last}, nil
}

// lastWALRecord reads the local WAL of timeline tl from start with pg_waldump and returns the
// start of the last valid record.
func (p *Postgres) lastWALRecord(ctx context.Context, cfg Config, tl int, start int64) (int64, error) {
	cmd := exec.CommandContext(ctx, p.bin(cfg, "pg_waldump"), "-p", filepath.Join(cfg.DataDir, "pg_wal"),
		"-t", strconv.Itoa(tl), "-s", patroni.FormatLSN(start))
	cmd.Env = processEnv("LC_ALL=C")
	stderr := &capBuffer{max: 4096}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("pg_waldump: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("pg_waldump: %w", err)
	}
	var last int64 = -1
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		i := strings.Index(line, " lsn: ")
		if i < 0 {
			continue
		}
		rest := line[i+6:]
		if j := strings.IndexByte(rest, ','); j >= 0 {
			rest = rest[:j]
		}
		if v, err := patroni.ParseLSN(rest); err == nil {
			last = v
		}
	}
	_ = cmd.Wait() // pg_waldump ends with an error at the end of valid WAL
	if ctx.Err() != nil {
		return 0, fmt.Errorf("pg_waldump: %w", ctx.Err())
	}
	if last < 0 {
		return 0, fmt.Errorf("pg_waldump found no WAL record at %s on timeline %d: %s", patroni.FormatLSN(start), tl, stderr.String())
	}
	return last, nil
}

// NeedsRewind reports whether the stopped local data directory has diverged from up's history.
// It asks up (replication connection as the replication user: IDENTIFY_SYSTEM, TIMELINE_HISTORY)
// and compares with pg_controldata: a rewind is needed when the local timeline is ahead of up's
// or missing from its history, or when local WAL goes beyond the point where up's history left
// the local timeline (a former primary: its last record starts at or after the switch point; a
// standby: its minimum recovery point is past it). Same timeline -> false. A different system
// identifier is an error.
func (p *Postgres) NeedsRewind(ctx context.Context, up Upstream) (bool, error) {
	cfg, _ := p.config()
	if p.Running() {
		return false, fmt.Errorf("rewind check against %s: %w", up.Name, ErrAlreadyRunning)
	}
	cd, err := p.ControlData(ctx)
	if err != nil {
		return false, fmt.Errorf("rewind check against %s: %w", up.Name, err)
	}
	local, err := p.localEnd(ctx, cfg, cd)
	if err != nil {
		return false, fmt.Errorf("rewind check against %s: %w", up.Name, err)
	}
	sysid, upTL, hist, err := p.upstreamTimeline(ctx, cfg, up)
	if err != nil {
		return false, fmt.Errorf("rewind check against %s: %w", up.Name, err)
	}
	if sysid != cd.SystemIdentifier {
		return false, fmt.Errorf("rewind check against %s: system identifier %s differs from local %s", up.Name, sysid, cd.SystemIdentifier)
	}
	logger := cfg.Logger.With("upstream", up.Name, "local_timeline", local.timeline, "local_lsn", patroni.FormatLSN(local.lsn), "upstream_timeline", upTL)
	switch {
	case local.timeline == upTL:
		return false, nil
	case local.timeline > upTL:
		logger.Info("rewind needed: local timeline is ahead of the upstream's")
		return true, nil
	}
	for _, e := range hist {
		if e.Timeline != local.timeline {
			continue
		}
		need := local.lsn >= e.SwitchPoint
		if local.replayed {
			need = local.lsn > e.SwitchPoint
		}
		logger.Info("rewind check", "switch_point", patroni.FormatLSN(e.SwitchPoint), "replayed", local.replayed, "needed", need)
		return need, nil
	}
	logger.Info("rewind needed: local timeline is not in the upstream's history")
	return true, nil
}

// crashRecovery brings a data directory that was not shut down cleanly to a clean shutdown by
// running a single-user backend (it never listens, so nothing can connect to it).
func (p *Postgres) crashRecovery(ctx context.Context, cfg Config) error {
	for _, f := range []string{"standby.signal", "recovery.signal"} {
		if err := os.Remove(filepath.Join(cfg.DataDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("crash recovery of %s: %w", cfg.DataDir, err)
		}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fmt.Errorf("crash recovery of %s: %w", cfg.DataDir, err)
	}
	defer devnull.Close()
	cfg.Logger.Info("running crash recovery in single-user mode before pg_rewind", "data_dir", cfg.DataDir)
	args := append([]string{"--single"}, serverArgs(cfg)...)
	args = append(args, "template1")
	out, err := p.runTool(ctx, cfg, devnull, processEnv(), "postgres", args...)
	if err != nil {
		return fmt.Errorf("crash recovery of %s: %w\n%s", cfg.DataDir, err, out)
	}
	return nil
}

// checkpointUpstream makes sure up's pg_control shows its current timeline (pg_rewind reads the
// source's timeline from there; a fresh promotion only requests a spread checkpoint). Best effort:
// it needs the superuser.
func (p *Postgres) checkpointUpstream(ctx context.Context, cfg Config, up Upstream) {
	cc, err := connConfig(cfg, up.Host, up.Port, cfg.Superuser, "postgres")
	if err == nil {
		var conn *pgx.Conn
		conn, err = pgx.ConnectConfig(ctx, cc)
		if err == nil {
			defer closeConn(conn)
			var rec bool
			var cur, ckpt int32
			err = conn.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery(),
  CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint())`).Scan(&rec, &cur, &ckpt)
			if err == nil && !rec && ckpt < cur {
				cfg.Logger.Info("checkpointing the upstream before pg_rewind", "upstream", up.Name, "timeline", cur, "checkpoint_timeline", ckpt)
				_, err = conn.Exec(ctx, "CHECKPOINT")
			}
		}
	}
	if err != nil {
		cfg.Logger.Warn("could not make sure the upstream checkpointed after promotion", "upstream", up.Name, "err", err)
	}
}

// Rewind runs pg_rewind on the stopped data directory with up as the source, connecting as the
// rewind user (or the superuser) with the password from the passfile. A data directory that was
// not shut down cleanly first gets crash recovery in single-user mode. The error carries
// pg_rewind's output. After a failed or interrupted pg_rewind the data directory may be unusable:
// clone it again.
func (p *Postgres) Rewind(ctx context.Context, up Upstream) error {
	cfg, _ := p.config()
	if p.Running() {
		return fmt.Errorf("rewinding %s from %s: %w", cfg.DataDir, up.Name, ErrAlreadyRunning)
	}
	if st := p.DataDirState(); st != DataDirValid {
		return fmt.Errorf("rewinding %s from %s: data directory is %v", cfg.DataDir, up.Name, st)
	}
	cd, err := p.ControlData(ctx)
	if err != nil {
		return fmt.Errorf("rewinding %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	if !cd.CleanShutdown() {
		if err := p.crashRecovery(ctx, cfg); err != nil {
			return fmt.Errorf("rewinding from %s: %w", up.Name, err)
		}
		if cd, err = p.ControlData(ctx); err != nil {
			return fmt.Errorf("rewinding %s from %s: %w", cfg.DataDir, up.Name, err)
		}
		if !cd.CleanShutdown() {
			return fmt.Errorf("rewinding %s from %s: still %q after crash recovery", cfg.DataDir, up.Name, cd.State)
		}
	}
	if err := p.writePassfile(cfg); err != nil {
		return fmt.Errorf("rewinding %s from %s: %w", cfg.DataDir, up.Name, err)
	}
	p.checkpointUpstream(ctx, cfg, up)
	user := cfg.Rewind.Username
	if user == "" {
		user = cfg.Superuser.Username
	}
	src := conninfo("host", up.Host, "port", strconv.Itoa(up.Port), "user", user, "dbname", "postgres",
		"application_name", "tusker-rewind")
	cfg.Logger.Info("running pg_rewind", "from", up.String(), "data_dir", cfg.DataDir)
	start := time.Now()
	args := []string{"--target-pgdata=" + cfg.DataDir, "--source-server=" + src}
	if cfg.ConfigDir != cfg.DataDir {
		args = append(args, "--config-file="+filepath.Join(cfg.ConfigDir, "postgresql.conf"))
	}
	out, err := p.runTool(ctx, cfg, nil, toolEnv(cfg, "LC_ALL=C"), "pg_rewind", args...)
	if err != nil {
		return fmt.Errorf("pg_rewind of %s from %s: %w\n%s", cfg.DataDir, up.String(), err, out)
	}
	cfg.Logger.Info("pg_rewind finished", "from", up.Name, "took", time.Since(start).Round(time.Millisecond), "output", out)
	return nil
}
