package postgres

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// passfileNode is a Postgres (never started) whose passfile is path.
func passfileNode(t *testing.T, path string) *Postgres {
	t.Helper()
	p, err := New(Config{Name: "n1", DataDir: filepath.Join(t.TempDir(), "data"), BinDir: harness.PGBinDir(t),
		Listen: "127.0.0.1:5432", Superuser: Auth{"postgres", "su-pw"}, Replication: Auth{"replicator", "rep-pw"},
		Pgpass: path, Logger: testLogger()})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// TestPassfileInAPrivateDirectory: a missing directory is created 0700 and the file 0600.
func TestPassfileInAPrivateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "home", ".tusker")
	path := filepath.Join(dir, "pgpass-n1")
	require.NoError(t, passfileNode(t, path).WritePassfile())
	st, err := os.Lstat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	st, err = os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	assert.Equal(t, "*:*:*:replicator:rep-pw\n*:*:*:postgres:su-pw\n", readFile(t, path))
	// Written again over its own file.
	require.NoError(t, passfileNode(t, path).WritePassfile())

	// Without a configured path: a private directory in TMPDIR, not a predictable name there.
	p := passfileNode(t, "")
	cfg, _ := p.config()
	assert.Equal(t, filepath.Join(os.TempDir(), "tusker-"+strconv.Itoa(os.Geteuid()), "pgpass-n1"), cfg.Pgpass)
}

func TestPassfileRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	require.NoError(t, os.WriteFile(target, []byte("untouched"), 0o600))
	path := filepath.Join(dir, "pgpass")
	require.NoError(t, os.Symlink(target, path))
	err := passfileNode(t, path).WritePassfile()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "passfile "+path+" is a symbolic link (to "+target)
	assert.Equal(t, "untouched", readFile(t, target))

	// A dangling one too: writing through it would create the file wherever it points.
	require.NoError(t, os.Remove(target))
	require.Error(t, passfileNode(t, path).WritePassfile())
	_, err = os.Lstat(target)
	assert.True(t, os.IsNotExist(err), "the link's target was created")

	// A directory that is a symbolic link.
	real := filepath.Join(dir, "real")
	require.NoError(t, os.Mkdir(real, 0o700))
	require.NoError(t, os.Symlink(real, filepath.Join(dir, "linked")))
	err = passfileNode(t, filepath.Join(dir, "linked", "pgpass")).WritePassfile()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is a symbolic link")
}

// TestPassfileRefusesAForeignFile: a file another user owns is not written into. As root the
// test hands a file to nobody; otherwise it uses /etc/passwd, which root owns (the tests run as
// an unprivileged user when started as root).
func TestPassfileRefusesAForeignFile(t *testing.T) {
	path := "/etc/passwd"
	if os.Geteuid() == 0 {
		path = filepath.Join(t.TempDir(), "pgpass")
		require.NoError(t, os.WriteFile(path, []byte("theirs"), 0o600))
		require.NoError(t, os.Chown(path, 65534, 65534))
	}
	st, err := os.Lstat(path)
	require.NoError(t, err)
	owner := ownerOf(st)
	require.NotEqual(t, os.Geteuid(), owner)
	before := readFile(t, path)
	err = passfileNode(t, path).WritePassfile()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "passfile "+path+" is owned by "+userName(owner)+", not by "+userName(os.Geteuid()))
	assert.Equal(t, before, readFile(t, path))
}

// TestPassfileDirectoryChecks: the directory is checked as the user given, so that directories
// of "another user" can be made without root: our own files seen by a different uid.
func TestPassfileDirectoryChecks(t *testing.T) {
	me := os.Geteuid()
	other := me + 4242
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o700))
	path := filepath.Join(dir, "pgpass")
	require.NoError(t, preparePassfile(path, me))

	err := preparePassfile(path, other)
	require.Error(t, err, "a directory owned by someone else")
	assert.Contains(t, err.Error(), "its directory "+dir+" is owned by "+userName(me)+", not by "+userName(other))

	for _, mode := range []os.FileMode{0o770, 0o702, 0o1777} {
		require.NoError(t, os.Chmod(dir, mode))
		err := preparePassfile(path, me)
		require.Error(t, err, "mode %v", mode)
		assert.Contains(t, err.Error(), "may be written by other users")
	}
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, preparePassfile(path, me), "others may read the directory (the file is 0600)")

	// A root-owned sticky directory such as /tmp: another user cannot replace our file there.
	if st, err := os.Lstat("/tmp"); err == nil && ownerOf(st) == 0 && st.Mode()&os.ModeSticky != 0 {
		assert.NoError(t, preparePassfile("/tmp/tusker-test-pgpass-that-does-not-exist", me))
	}

	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	assert.ErrorContains(t, preparePassfile(filepath.Join(notDir, "pgpass"), me), "is not a directory")

	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	assert.ErrorContains(t, preparePassfile(filepath.Join(dir, "sub"), me), "is not a regular file")
}
