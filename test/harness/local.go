package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LocalSetup is what a program outside `go test` (demo, bench) needs to run a cluster here: a
// working directory, the binaries where the PostgreSQL user can run them, and that user's
// credentials when we are root.
type LocalSetup struct {
	Dir    string
	Tusker string
	Etcd   string
	PGBin  string
	Cred   *syscall.Credential
}

// PrepareLocal creates a fresh directory under base and copies the binaries into it.
func PrepareLocal(base, tuskerBin string) (*LocalSetup, error) {
	dir, err := os.MkdirTemp(base, "tusker-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &LocalSetup{Dir: dir, PGBin: os.Getenv("TUSKER_PG_BIN")}
	if s.PGBin == "" {
		s.PGBin = "/usr/lib/postgresql/15/bin"
	}
	if _, err := os.Stat(filepath.Join(s.PGBin, "postgres")); err != nil {
		return nil, fmt.Errorf("PostgreSQL 15 not found in %s: run `make deps`", s.PGBin)
	}
	etcd, err := EtcdPath()
	if err != nil {
		return nil, err
	}
	s.Etcd, s.Tusker = filepath.Join(dir, "etcd"), filepath.Join(dir, "tusker")
	if err := CopyFile(etcd, s.Etcd, 0o755); err != nil {
		return nil, err
	}
	if err := CopyFile(tuskerBin, s.Tusker, 0o755); err != nil {
		return nil, fmt.Errorf("tusker binary %s: %w (run `make build`)", tuskerBin, err)
	}
	if os.Geteuid() == 0 {
		uid, gid, _, err := Unprivileged()
		if err != nil {
			return nil, err
		}
		s.Cred = &syscall.Credential{Uid: uid, Gid: gid}
	}
	return s, nil
}

// Own hands a directory to the PostgreSQL user when we are root.
func (s *LocalSetup) Own(path string) {
	if s.Cred != nil {
		_ = os.Chown(path, int(s.Cred.Uid), int(s.Cred.Gid))
	}
}

// StartEtcd starts an etcd server in Dir/etcd.
func (s *LocalSetup) StartEtcd() (*Etcd, error) {
	d := filepath.Join(s.Dir, "etcd-server")
	if err := os.MkdirAll(d, 0o700); err != nil {
		return nil, err
	}
	s.Own(d)
	e, err := NewEtcd(d, s.Etcd, s.Cred)
	if err != nil {
		return nil, err
	}
	return e, e.Start()
}
