package config

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSecretEnv(t *testing.T) {
	for name, secret := range map[string]bool{
		"PATRONI_CONFIGURATION":             true,
		"PATRONI_SUPERUSER_PASSWORD":        true,
		"PATRONI_REPLICATION_PASSWORD":      true,
		"PATRONI_REWIND_PASSWORD":           true,
		"PATRONI_REPLICATION_SSLPASSWORD":   true,
		"PATRONI_RESTAPI_PASSWORD":          true,
		"PATRONI_RESTAPI_KEYFILE_PASSWORD":  true,
		"PATRONI_CTL_PASSWORD":              true,
		"PATRONI_CTL_KEYFILE_PASSWORD":      true,
		"PATRONI_ETCD3_PASSWORD":            true,
		"PATRONI_ETCD_PASSWORD":             true,
		"PATRONI_CONSUL_TOKEN":              true,
		"PATRONI_ZOOKEEPER_KEY_PASSWORD":    true,
		"PATRONI_ZOOKEEPER_AUTH_DATA":       true,
		"PATRONI_RAFT_PASSWORD":             true,
		"PATRONI_KUBERNETES_TOKEN":          true,
		"PATRONI_NAME":                      false,
		"PATRONI_SCOPE":                     false,
		"PATRONI_SUPERUSER_USERNAME":        false,
		"PATRONI_RESTAPI_USERNAME":          false,
		"PATRONI_RESTAPI_KEYFILE":           false,
		"PATRONI_ETCD3_HOSTS":               false,
		"PATRONI_POSTGRESQL_PGPASS":         false,
		"PATRONI_KUBERNETES_LABELS":         false,
		"PGPASSWORD":                        false, // not tusker's: libpq's, and left to the user
		"TUSKER_PASSWORD":                   false,
		"MY_PATRONI_SUPERUSER_PASSWORD":     false,
		"PATRONI_CONFIGURATION_EXTRA_THING": false,
	} {
		assert.Equal(t, secret, IsSecretEnv(name), name)
	}
	env := []string{"PATH=/bin", "PATRONI_NAME=n1", "PATRONI_SUPERUSER_PASSWORD=a", "PATRONI_CONFIGURATION=x: 1",
		"PATRONI_SUPERUSER_PASSWORD=b", "PATRONI_CONSUL_TOKEN=t", "NOEQUALS"}
	assert.Equal(t, []string{"PATRONI_SUPERUSER_PASSWORD", "PATRONI_CONFIGURATION", "PATRONI_CONSUL_TOKEN"}, SecretEnvNames(env))
	assert.Empty(t, SecretEnvNames(nil))
}

func TestPgIdentKey(t *testing.T) {
	c, err := loadYAML(t, "postgresql:\n  pg_ident:\n  - ops alice postgres\n  - ops bob replicator\n")
	require.NoError(t, err)
	assert.Equal(t, []string{"ops alice postgres", "ops bob replicator"}, c.PostgreSQL.PgIdent)
	assert.NotContains(t, c.Unimplemented, "postgresql.pg_ident")
	_, err = loadYAML(t, "postgresql:\n  pg_ident: {a: b}\n")
	assert.ErrorContains(t, err, "postgresql.pg_ident: expected a list of pg_ident.conf lines")
}

// TestDefaultPgpass: the default pgpass is in a private directory of the user tusker runs as,
// never a predictable name in a directory others may write.
func TestDefaultPgpass(t *testing.T) {
	uid := os.Geteuid()
	fallback := filepath.Join(os.TempDir(), "tusker-"+strconv.Itoa(uid), "pgpass-n_1")

	home := t.TempDir()
	require.NoError(t, os.Chmod(home, 0o755))
	t.Setenv("HOME", home)
	assert.Equal(t, filepath.Join(home, ".tusker", "pgpass-n_1"), DefaultPgpass("n/1"), "a private HOME")
	c, err := loadYAML(t, "name: n1\n")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(home, ".tusker", "pgpass-n1"), c.PostgreSQL.Pgpass, "ApplyDefaults")

	require.NoError(t, os.Chmod(home, 0o775))
	assert.Equal(t, fallback, DefaultPgpass("n/1"), "a group-writable HOME")
	require.NoError(t, os.Chmod(home, 0o757))
	assert.Equal(t, fallback, DefaultPgpass("n/1"), "a world-writable HOME")
	require.NoError(t, os.Chmod(home, 0o700))

	link := filepath.Join(t.TempDir(), "home-link")
	require.NoError(t, os.Symlink(home, link))
	t.Setenv("HOME", link)
	assert.Equal(t, fallback, DefaultPgpass("n/1"), "a HOME that is a symbolic link")

	for _, h := range []string{"", "relative/home", filepath.Join(home, "missing")} {
		t.Setenv("HOME", h)
		assert.Equal(t, fallback, DefaultPgpass("n/1"), "HOME %q", h)
	}

	// A HOME another user owns: as root, one handed to nobody; otherwise "/", which root owns.
	foreign := "/"
	if uid == 0 {
		foreign = t.TempDir()
		require.NoError(t, os.Chown(foreign, 65534, 65534))
	}
	t.Setenv("HOME", foreign)
	assert.Equal(t, fallback, DefaultPgpass("n/1"), "a HOME owned by another user")
}
