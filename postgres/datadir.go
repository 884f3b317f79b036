package postgres

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tusker-ha/tusker/patroni"
)

// DataDirState classifies the data directory.
type DataDirState int

// Data directory states.
const (
	DataDirEmpty   DataDirState = iota // missing, or holds only hidden files and lost+found
	DataDirValid                       // has PG_VERSION and global/pg_control
	DataDirInvalid                     // has other files but is not a data directory
)

func (s DataDirState) String() string {
	switch s {
	case DataDirEmpty:
		return "empty"
	case DataDirValid:
		return "valid"
	case DataDirInvalid:
		return "invalid"
	}
	return "DataDirState(" + strconv.Itoa(int(s)) + ")"
}

// DataDirState looks at the data directory.
// DataDirUnreadable is the error that makes a data directory unusable when it exists but cannot
// be read (permissions, a broken mount): nil otherwise. DataDirState calls such a directory
// invalid, which alone would not tell an operator why.
func (p *Postgres) DataDirUnreadable() error {
	cfg, _ := p.config()
	if _, err := os.ReadDir(cfg.DataDir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("reading the data directory: %w", err)
	}
	return nil
}

func (p *Postgres) DataDirState() DataDirState {
	cfg, _ := p.config()
	entries, err := os.ReadDir(cfg.DataDir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return DataDirEmpty
		}
		return DataDirInvalid
	}
	empty := true
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && e.Name() != "lost+found" {
			empty = false
			break
		}
	}
	if empty {
		return DataDirEmpty
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "PG_VERSION")); err != nil || !st.Mode().IsRegular() {
		return DataDirInvalid
	}
	if st, err := os.Stat(filepath.Join(cfg.DataDir, "global", "pg_control")); err != nil || !st.Mode().IsRegular() {
		return DataDirInvalid
	}
	return DataDirValid
}

// RemoveDataDir removes everything inside the data directory (and inside the directory a
// symlinked pg_wal points to), keeping the empty directory itself with mode 0700. It refuses while
// postgres is running.
func (p *Postgres) RemoveDataDir() error {
	if p.Running() {
		return fmt.Errorf("removing data directory: %w", errors.New("postgres is running on it"))
	}
	cfg, _ := p.config()
	return removeContents(cfg.DataDir)
}

func removeContents(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("removing data directory %s: %w", dir, err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "pg_wal")); err == nil {
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		if err := removeContents(target); err != nil {
			return err
		}
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("removing data directory %s: %w", dir, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("removing data directory %s: %w", dir, err)
	}
	return nil
}

// ControlData is the parsed output of pg_controldata.
type ControlData struct {
	SystemIdentifier string
	State            string // "in production", "shut down", "shut down in recovery", "in archive recovery", "in crash recovery", ...

	Timeline      int   // Latest checkpoint's TimeLineID
	PrevTimeline  int   // Latest checkpoint's PrevTimeLineID
	CheckpointLSN int64 // Latest checkpoint location
	RedoLSN       int64 // Latest checkpoint's REDO location

	MinRecoveryEndLSN      int64 // Minimum recovery ending location
	MinRecoveryEndTimeline int   // Min recovery ending loc's timeline

	DataChecksums bool // Data page checksum version != 0
	WalLogHints   bool // wal_log_hints setting

	MaxConnections     int
	MaxWorkerProcesses int
	MaxWalSenders      int
	MaxPreparedXacts   int
	MaxLocksPerXact    int

	Raw map[string]string // every "key: value" line
}

// CleanShutdown reports whether the cluster was shut down cleanly (as a primary or a standby).
func (cd ControlData) CleanShutdown() bool {
	return cd.State == "shut down" || cd.State == "shut down in recovery"
}

// ControlData runs `pg_controldata -D DataDir` (LC_ALL=C) and parses it.
func (p *Postgres) ControlData(ctx context.Context) (ControlData, error) {
	cfg, _ := p.config()
	cmd := exec.CommandContext(ctx, p.bin(cfg, "pg_controldata"), "-D", cfg.DataDir)
	cmd.Env = processEnv("LC_ALL=C", "LANG=C", "LANGUAGE=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return ControlData{}, fmt.Errorf("pg_controldata of %s: %w: %s", cfg.DataDir, err, strings.TrimSpace(stderr.String()))
	}
	cd, err := ParseControlData(string(out))
	if err != nil {
		return ControlData{}, fmt.Errorf("pg_controldata of %s: %w", cfg.DataDir, err)
	}
	return cd, nil
}

// ParseControlData parses pg_controldata output produced in the C locale.
func ParseControlData(out string) (ControlData, error) {
	raw := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		raw[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	cd := ControlData{Raw: raw}
	cd.SystemIdentifier = raw["Database system identifier"]
	cd.State = raw["Database cluster state"]
	if cd.SystemIdentifier == "" || cd.State == "" {
		return cd, errors.New("output lacks the system identifier or the cluster state")
	}
	var errs []error
	lsn := func(key string) int64 {
		v, ok := raw[key]
		if !ok {
			return 0
		}
		n, err := patroni.ParseLSN(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}
	num := func(key string) int {
		v, ok := raw[key]
		if !ok {
			return 0
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
		return n
	}
	cd.Timeline = num("Latest checkpoint's TimeLineID")
	cd.PrevTimeline = num("Latest checkpoint's PrevTimeLineID")
	cd.CheckpointLSN = lsn("Latest checkpoint location")
	cd.RedoLSN = lsn("Latest checkpoint's REDO location")
	cd.MinRecoveryEndLSN = lsn("Minimum recovery ending location")
	cd.MinRecoveryEndTimeline = num("Min recovery ending loc's timeline")
	cd.DataChecksums = num("Data page checksum version") != 0
	cd.WalLogHints = raw["wal_log_hints setting"] == "on"
	cd.MaxConnections = num("max_connections setting")
	cd.MaxWorkerProcesses = num("max_worker_processes setting")
	cd.MaxWalSenders = num("max_wal_senders setting")
	cd.MaxPreparedXacts = num("max_prepared_xacts setting")
	cd.MaxLocksPerXact = num("max_locks_per_xact setting")
	return cd, errors.Join(errs...)
}
