package config

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Local defaults.
const (
	DefaultNamespace           = "/service"
	DefaultSuperuserName       = "postgres"
	DefaultReplicationUsername = "replicator"
	DefaultPgCtlTimeout        = 60
	DefaultLogLevel            = "INFO"
	DefaultLogType             = "plain"
	DefaultEtcdProtocol        = "http"
	DefaultWatchdogMode        = "automatic"
	DefaultWatchdogDevice      = "/dev/watchdog"
	// PgpassPrefix is the default pgpass file name, in PgpassDir, without the (sanitised)
	// member name.
	PgpassPrefix = "pgpass-"
)

// PgpassDir is the directory of the default pgpass file: a private directory of the user tusker
// runs as, never a name in a shared directory that another user could take first. It is
// $HOME/.tusker when HOME is an absolute path to a directory (not a symbolic link) owned by that
// user that neither its group nor others may write, and that it can write (a read-only root file
// system in a container often holds HOME), else <os.TempDir()>/tusker-<uid>. tusker
// creates it with mode 0700 and checks it again before it writes the file (postgres refuses a
// directory or a file that another user owns or could replace).
func PgpassDir() string {
	uid := os.Geteuid()
	if home := os.Getenv("HOME"); filepath.IsAbs(home) && privateDir(home, uid) {
		return filepath.Join(filepath.Clean(home), ".tusker")
	}
	return filepath.Join(os.TempDir(), "tusker-"+strconv.Itoa(uid))
}

// DefaultPgpass is postgresql.pgpass when it is not set: PgpassDir()/pgpass-<name>, the name
// made filesystem-safe.
func DefaultPgpass(name string) string {
	return filepath.Join(PgpassDir(), PgpassPrefix+safeFileName(name))
}

// privateDir reports whether dir itself (not what a symbolic link points to) is a directory
// owned by uid that neither its group nor others may write, and that we may write.
func privateDir(dir string, uid int) bool {
	st, err := os.Lstat(dir)
	if err != nil || !st.IsDir() || st.Mode().Perm()&0o022 != 0 {
		return false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(sys.Uid) == uid && syscall.Access(dir, 2|1) == nil // W_OK|X_OK
}

// ApplyDefaults fills the unset keys with their defaults (Load calls it; code that builds a
// Config by hand may call it too). It never overwrites a value that is set.
//
//   - namespace "/service"
//   - restapi.connect_address = restapi.listen unless the listen host is a wildcard (0.0.0.0, ::, *)
//   - postgresql.connect_address = first non-wildcard host of postgresql.listen with its port
//   - postgresql.config_dir = postgresql.data_dir
//   - postgresql.pgpass = DefaultPgpass(name): pgpass-<name> (name made filesystem-safe) in
//     PgpassDir, a private directory ($HOME/.tusker, else <TMPDIR>/tusker-<uid>)
//   - postgresql.authentication.superuser.username "postgres", replication.username "replicator"
//   - postgresql.pg_ctl_timeout 60 (0 means unset)
//   - log.level INFO, log.type plain
//   - etcd3.protocol http
//   - watchdog.mode automatic, watchdog.device /dev/watchdog
//   - bootstrap.dcs = DefaultDynamic() when it is entirely unset
//
// postgresql.bin_dir stays empty: it is resolved at run time.
func (c *Config) ApplyDefaults() {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.Log.Level == "" {
		c.Log.Level = DefaultLogLevel
	}
	if c.Log.Type == "" {
		c.Log.Type = DefaultLogType
	}
	if c.RestAPI.ConnectAddress == "" && c.RestAPI.Listen != "" {
		if host, _, err := SplitHostPort(c.RestAPI.Listen); err == nil && !isWildcard(host) {
			c.RestAPI.ConnectAddress = c.RestAPI.Listen
		}
	}
	pg := &c.PostgreSQL
	if pg.ConnectAddress == "" && pg.Listen != "" {
		if hosts, port, err := c.ListenHosts(); err == nil {
			for _, h := range hosts {
				if !isWildcard(h) {
					pg.ConnectAddress = net.JoinHostPort(h, strconv.Itoa(port))
					break
				}
			}
		}
	}
	if pg.ConfigDir == "" {
		pg.ConfigDir = pg.DataDir
	}
	if pg.Pgpass == "" && c.Name != "" {
		pg.Pgpass = DefaultPgpass(c.Name)
	}
	if pg.Authentication.Superuser.Username == "" {
		pg.Authentication.Superuser.Username = DefaultSuperuserName
	}
	if pg.Authentication.Replication.Username == "" {
		pg.Authentication.Replication.Username = DefaultReplicationUsername
	}
	if pg.PgCtlTimeout == 0 {
		pg.PgCtlTimeout = DefaultPgCtlTimeout
	}
	if c.Watchdog.Mode == "" {
		c.Watchdog.Mode = DefaultWatchdogMode
	}
	if c.Watchdog.Device == "" {
		c.Watchdog.Device = DefaultWatchdogDevice
	}
	if c.Etcd3 != nil && c.Etcd3.Protocol == "" {
		c.Etcd3.Protocol = DefaultEtcdProtocol
	}
	dcs := &c.Bootstrap.DCS
	if dcs.Raw == nil && dcs.TTL == 0 && dcs.LoopWait == 0 && dcs.RetryTimeout == 0 {
		*dcs = DefaultDynamic()
	}
}

// isWildcard reports whether a listen host means "all interfaces".
func isWildcard(host string) bool {
	switch strings.Trim(host, "[]") {
	case "", "0.0.0.0", "::", "*":
		return true
	}
	return false
}

// safeFileName replaces every character outside [A-Za-z0-9._-] by "_" (and "." / ".." wholly).
func safeFileName(s string) string {
	b := []byte(s)
	for i, ch := range b {
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '.', ch == '_', ch == '-':
		default:
			b[i] = '_'
		}
	}
	out := string(b)
	if strings.Trim(out, ".") == "" {
		out = strings.Repeat("_", len(out))
	}
	return out
}
