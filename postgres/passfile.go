package postgres

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// preparePassfile makes sure that path is a place where the user uid may write passwords
// without another user reading, replacing or redirecting them, and creates its directory (mode
// 0700) when it is missing. The directory itself (Lstat: not a symbolic link) must be owned by
// uid and writable by neither group nor others; a root-owned directory is accepted when nobody
// else may write it, or when it is sticky like /tmp, where no other user can remove or rename
// over a file of ours. An existing file must be a regular file (not a symbolic link) owned by
// uid. The errors name the file or directory and its owner.
func preparePassfile(path string, uid int) error {
	dir := filepath.Dir(path)
	st, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the directory of passfile %s: %w", path, err)
		}
		st, err = os.Lstat(dir)
	}
	if err != nil {
		return fmt.Errorf("checking the directory of passfile %s: %w", path, err)
	}
	switch owner := ownerOf(st); {
	case st.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("passfile %s: its directory %s is a symbolic link; refusing to write passwords there (set postgresql.pgpass to a path in a real directory)", path, dir)
	case !st.IsDir():
		return fmt.Errorf("passfile %s: %s is not a directory", path, dir)
	case owner != uid && owner != 0:
		return fmt.Errorf("passfile %s: its directory %s is owned by %s, not by %s that tusker runs as; refusing to write passwords there", path, dir, userName(owner), userName(uid))
	case st.Mode().Perm()&0o022 != 0 && (owner != 0 || st.Mode()&fs.ModeSticky == 0):
		return fmt.Errorf("passfile %s: its directory %s (mode %v, owner %s) may be written by other users, who could replace the file; refusing to write passwords there", path, dir, st.Mode().Perm(), userName(owner))
	}
	st, err = os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking passfile %s: %w", path, err)
	}
	switch owner := ownerOf(st); {
	case st.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		return fmt.Errorf("passfile %s is a symbolic link (to %s, owned by %s); refusing to write passwords through it: remove it, or set postgresql.pgpass to another path", path, target, userName(owner))
	case !st.Mode().IsRegular():
		return fmt.Errorf("passfile %s is not a regular file (%v); refusing to write passwords into it", path, st.Mode().Type())
	case owner != uid:
		return fmt.Errorf("passfile %s is owned by %s, not by %s that tusker runs as; refusing to write passwords into it: remove it, or set postgresql.pgpass to another path", path, userName(owner), userName(uid))
	}
	return nil
}

// ownerOf is the uid that owns a file (-1 when the platform does not say).
func ownerOf(st fs.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}

// userName is "name (uid N)", or "uid N" for a uid without a name.
func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil && u.Username != "" {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

func (p *Postgres) writePassfile(cfg Config) error {
	if err := preparePassfile(cfg.Pgpass, os.Geteuid()); err != nil {
		return err
	}
	return writeFileAtomic(cfg.Pgpass, []byte(renderPgpass(cfg)), 0o600)
}
