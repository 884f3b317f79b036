// Package postgres controls the local PostgreSQL instance of one tusker node: the postmaster
// process, the configuration files tusker generates, queries over pgx, pg_controldata,
// pg_basebackup and pg_rewind.
//
// It takes plain values and imports no other tusker package. Long calls (Start, Stop, Basebackup,
// Rewind, Promote, NeedsRewind) honour their context and never hold a lock that the quick calls
// (Running, PostmasterPID, Fence, State) need, so the HA loop can run them in goroutines.
package postgres

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian's PostgreSQL 15 server binaries live.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// DefaultPgCtlTimeout bounds Start and Stop when Config.PgCtlTimeout is zero.
const DefaultPgCtlTimeout = 60 * time.Second

// Errors callers may test with errors.Is.
var (
	// ErrNotRunning: the operation needs a running postmaster and there is none.
	ErrNotRunning = errors.New("postgres is not running")
	// ErrAlreadyRunning: Start found a postmaster already running on the data directory.
	ErrAlreadyRunning = errors.New("postgres is already running")
	// ErrStartTimeout: the postmaster did not accept connections within PgCtlTimeout; it is left running.
	ErrStartTimeout = errors.New("postgres did not accept connections in time")
	// ErrFenced: Fence was called while Start was starting the postmaster.
	ErrFenced = errors.New("postgres was fenced")
	// ErrBusy: another Start is in progress.
	ErrBusy = errors.New("another start is in progress")
)

// Auth is a role name and its password.
type Auth struct{ Username, Password string }

// Config is everything the package needs to know about the local instance.
type Config struct {
	Name, Scope    string // member name (application_name, slot name source), cluster_name
	DataDir        string
	BinDir         string // "" = DefaultBinDir if it has postgres, else the directory of `postgres` in PATH
	ConfigDir      string // "" = DataDir
	Listen         string // "host[,host...]:port" -> listen_addresses, port
	ConnectAddress string // "host:port" others use to reach this node

	Superuser, Replication, Rewind Auth // Rewind.Username "" -> pg_rewind uses Superuser

	Parameters map[string]string // user parameters, already merged and rendered as strings
	PgHBA      []string          // pg_hba.conf lines; empty -> a default (peer for tusker's roles on the socket, no trust)
	PgIdent    []string          // pg_ident.conf lines after tusker's own map (IdentMap)
	Pgpass     string            // passfile tusker writes (0600) for libpq tools; "" = $TMPDIR/tusker-<uid>/pgpass-<slot>
	UseSlots   bool              // replicas stream through the physical slot SlotName(Name)
	// RecoveryConf are a replica's recovery settings (restore_command, archive_cleanup_command,
	// recovery_min_apply_delay...), already rendered; recovery targets, primary_conninfo and
	// primary_slot_name among them are ignored (tusker sets those).
	RecoveryConf map[string]string
	// BasebackupOptions are extra pg_basebackup options ("--max-rate=100M").
	BasebackupOptions []string

	PgCtlTimeout time.Duration // default 60s
	Logger       *slog.Logger  // default slog.Default()
	Output       io.Writer     // where the postmaster's stdout/stderr go; nil = os.Stderr
}

// Role is the role a Start (or the generated configuration) gives the instance.
type Role int

// Roles. The zero value is invalid so that a forgotten role never starts a primary.
const (
	Primary Role = iota + 1
	Replica
)

func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Replica:
		return "replica"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Upstream is the member to stream from, clone from or rewind from.
type Upstream struct {
	Name string
	Host string
	Port int
	// NoSlot streams without primary_slot_name: for a short catch-up from another replica, which
	// has no slot for this member (fast-forward before a promotion).
	NoSlot bool
	// Slot, when set, is the slot to stream through instead of this member's own (a standby
	// cluster's primary_slot_name on the remote primary).
	Slot string
	// Recovery are recovery settings that come with this upstream (a standby cluster's
	// restore_command, archive_cleanup_command, recovery_min_apply_delay); they win over
	// Config.RecoveryConf.
	Recovery map[string]string
}

func (u Upstream) String() string {
	return fmt.Sprintf("%s (%s)", u.Name, net.JoinHostPort(u.Host, strconv.Itoa(u.Port)))
}

// StartOptions says how to configure and start the instance. Upstream nil for a replica means a
// standby without primary_conninfo (it waits for Follow).
type StartOptions struct {
	Role     Role
	Upstream *Upstream
	// Recovery (primary only) starts a restored data directory in targeted recovery: the start
	// of a cluster bootstrapped from a backup, which becomes a primary at the end of recovery.
	Recovery *Recovery
}

// Recovery is how a restored data directory recovers before it becomes a primary.
type Recovery struct {
	// Params are recovery settings (restore_command, recovery_target_time,
	// recovery_target_action...): written into postgresql.conf with recovery.signal. None: the
	// settings and signal files the restore left are used, when KeepExisting.
	Params map[string]string
	// KeepExisting keeps the recovery settings the restore wrote into postgresql.auto.conf and
	// its signal files; without it they are removed, as for any start.
	KeepExisting bool
}

func (o StartOptions) validate() error {
	switch o.Role {
	case Primary, Replica:
	default:
		return fmt.Errorf("invalid role %v in start options", o.Role)
	}
	if o.Recovery != nil && o.Role != Primary {
		return fmt.Errorf("recovery settings in start options for role %v: only a primary recovers to a target", o.Role)
	}
	if o.Role == Replica && o.Upstream != nil && (o.Upstream.Host != "" || o.Upstream.Port != 0) {
		if o.Upstream.Host == "" || o.Upstream.Port <= 0 || o.Upstream.Port > 65535 {
			return fmt.Errorf("invalid upstream %q: host %q port %d", o.Upstream.Name, o.Upstream.Host, o.Upstream.Port)
		}
	}
	return nil
}

func (o StartOptions) clone() StartOptions {
	if o.Upstream != nil {
		u := *o.Upstream
		u.Recovery = maps.Clone(u.Recovery)
		o.Upstream = &u
	}
	if o.Recovery != nil {
		r := Recovery{Params: maps.Clone(o.Recovery.Params), KeepExisting: o.Recovery.KeepExisting}
		o.Recovery = &r
	}
	return o
}

// Postgres controls one local PostgreSQL instance. All methods are safe for concurrent use.
type Postgres struct {
	mu       sync.Mutex
	cfg      Config
	listen   listenAddr
	opts     StartOptions // last written/used options (role, upstream)
	child    *child       // postmaster started by us, nil if none
	fenceGen uint64       // incremented by Fence
	starting bool         // a Start is in progress

	// kept connection for State; connSem (capacity 1) guards conn and connPID.
	connSem chan struct{}
	conn    *pgx.Conn
	connPID int

	osUser string // the OS user we (and the postgres we start) run as, for pg_ident.conf; "" if it has no name
}

// New validates cfg, fills in defaults and returns a Postgres. It neither starts nor stops anything;
// a postmaster already running on the data directory is adopted (Running reports it).
func New(cfg Config) (*Postgres, error) {
	p := &Postgres{connSem: make(chan struct{}, 1)}
	c, l, err := normalize(cfg)
	if err != nil {
		return nil, err
	}
	p.cfg, p.listen = c, l
	p.opts = p.inferOptions()
	// The user database, as PostgreSQL's peer check consults it (not $USER).
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil && u.Username != "" {
		p.osUser = u.Username
	} else {
		c.Logger.Warn("the OS user tusker runs as has no name in the user database, so peer authentication cannot work: the default pg_hba.conf lets tusker in on the Unix socket with the superuser's password",
			"uid", os.Geteuid(), "err", err)
	}
	return p, nil
}

// SetConfig replaces the configuration; it takes effect on the next Start, WriteConfig or Reload.
// An invalid configuration is logged and ignored.
func (p *Postgres) SetConfig(cfg Config) {
	c, l, err := normalize(cfg)
	if err != nil {
		p.log().Error("ignoring invalid postgres configuration", "err", err)
		return
	}
	p.mu.Lock()
	p.cfg, p.listen = c, l
	p.mu.Unlock()
}

// Options returns the role and upstream of the last WriteConfig/Start/Promote/Follow, or as
// inferred from the data directory (standby.signal, generated primary_conninfo) at New.
func (p *Postgres) Options() StartOptions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.opts.clone()
}

// Close releases the kept database connection. It does not stop postgres; the goroutines that
// wait for a postmaster we started and forward its output end when that postmaster exits.
func (p *Postgres) Close() {
	p.connSem <- struct{}{}
	defer func() { <-p.connSem }()
	p.dropConnLocked()
}

func (p *Postgres) config() (Config, listenAddr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg, p.listen
}

func (p *Postgres) log() *slog.Logger {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Logger
}

func (p *Postgres) bin(cfg Config, name string) string { return filepath.Join(cfg.BinDir, name) }

type listenAddr struct {
	hosts []string // as given, brackets removed
	port  int
}

// parseListen parses "host[,host...]:port".
func parseListen(s string) (listenAddr, error) {
	i := strings.LastIndex(s, ":")
	if i < 0 {
		return listenAddr{}, fmt.Errorf("listen address %q: missing port", s)
	}
	port, err := strconv.Atoi(s[i+1:])
	if err != nil || port <= 0 || port > 65535 {
		return listenAddr{}, fmt.Errorf("listen address %q: invalid port", s)
	}
	var hosts []string
	for _, h := range strings.Split(s[:i], ",") {
		h = strings.TrimSpace(h)
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		if h != "" {
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		return listenAddr{}, fmt.Errorf("listen address %q: missing host", s)
	}
	return listenAddr{hosts: hosts, port: port}, nil
}

// localHost turns a listen address into one a local client can connect to.
func localHost(h string) string {
	switch h {
	case "*", "0.0.0.0", "":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return h
}

func normalize(cfg Config) (Config, listenAddr, error) {
	if cfg.Name == "" {
		return cfg, listenAddr{}, errors.New("postgres config: member name is empty")
	}
	if cfg.DataDir == "" {
		return cfg, listenAddr{}, errors.New("postgres config: data directory is empty")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, listenAddr{}, fmt.Errorf("postgres config: data directory %q: %w", cfg.DataDir, err)
	}
	cfg.DataDir = abs
	if cfg.ConfigDir == "" {
		cfg.ConfigDir = cfg.DataDir
	} else if cfg.ConfigDir, err = filepath.Abs(cfg.ConfigDir); err != nil {
		return cfg, listenAddr{}, fmt.Errorf("postgres config: config directory: %w", err)
	}
	if cfg.BinDir, err = findBinDir(cfg.BinDir); err != nil {
		return cfg, listenAddr{}, err
	}
	l, err := parseListen(cfg.Listen)
	if err != nil {
		return cfg, listenAddr{}, fmt.Errorf("postgres config: %w", err)
	}
	if cfg.Superuser.Username == "" {
		if u, err := user.Current(); err == nil {
			cfg.Superuser.Username = u.Username
		} else {
			cfg.Superuser.Username = "postgres"
		}
	}
	if cfg.Pgpass == "" {
		// A private directory (preparePassfile checks it), not a predictable name in /tmp.
		cfg.Pgpass = filepath.Join(os.TempDir(), "tusker-"+strconv.Itoa(os.Geteuid()), "pgpass-"+SlotName(cfg.Name))
	} else if cfg.Pgpass, err = filepath.Abs(cfg.Pgpass); err != nil {
		return cfg, listenAddr{}, fmt.Errorf("postgres config: pgpass: %w", err)
	}
	if cfg.PgCtlTimeout <= 0 {
		cfg.PgCtlTimeout = DefaultPgCtlTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	params := make(map[string]string, len(cfg.Parameters))
	for k, v := range cfg.Parameters {
		params[k] = v
	}
	cfg.Parameters = params
	cfg.PgHBA = append([]string(nil), cfg.PgHBA...)
	cfg.PgIdent = append([]string(nil), cfg.PgIdent...)
	return cfg, l, nil
}

func findBinDir(dir string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err != nil {
			return "", fmt.Errorf("postgres config: bin dir %s has no postgres binary: %w", dir, err)
		}
		return dir, nil
	}
	if _, err := os.Stat(filepath.Join(DefaultBinDir, "postgres")); err == nil {
		return DefaultBinDir, nil
	}
	p, err := exec.LookPath("postgres")
	if err != nil {
		return "", fmt.Errorf("postgres config: no postgres binary in %s or PATH: %w", DefaultBinDir, err)
	}
	return filepath.Dir(p), nil
}

// StandbySignal reports whether the data directory holds standby.signal: it was prepared (cloned
// or demoted) to run as a standby, whatever pg_control says.
func (p *Postgres) StandbySignal() bool {
	_, err := os.Stat(filepath.Join(p.cfg.DataDir, "standby.signal"))
	return err == nil
}

// inferOptions guesses the role (and upstream) of an existing data directory from its files, so
// that Reload/WriteConfig on an adopted postmaster keep what the previous tusker wrote.
func (p *Postgres) inferOptions() StartOptions {
	cfg := p.cfg
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "standby.signal")); err != nil {
		return StartOptions{Role: Primary}
	}
	o := StartOptions{Role: Replica}
	b, err := os.ReadFile(filepath.Join(cfg.ConfigDir, "postgresql.conf"))
	if err != nil || !strings.HasPrefix(string(b), headerMarker) {
		return o
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := parseConfLine(line)
		if !ok || name != "primary_conninfo" {
			continue
		}
		kv := parseConninfo(val)
		port, _ := strconv.Atoi(kv["port"])
		if kv["host"] != "" && port > 0 {
			o.Upstream = &Upstream{Host: kv["host"], Port: port}
		}
	}
	return o
}
