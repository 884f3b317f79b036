package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
)

// TestScrubSecrets: after scrubSecrets no child inherits the secret variables, while the
// configuration, loaded (and reloaded) from the environment as it was at start, keeps them.
func TestScrubSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tusker.yml")
	require.NoError(t, os.WriteFile(path, []byte("scope: s\nname: n1\nrestapi:\n  listen: 127.0.0.1:8008\n"+
		"etcd3:\n  host: 127.0.0.1:2379\npostgresql:\n  listen: 127.0.0.1:5432\n  data_dir: /tmp/data\n"), 0o600))
	t.Setenv("PATRONI_SUPERUSER_PASSWORD", "su-secret")
	t.Setenv("PATRONI_REPLICATION_PASSWORD", "rep-secret")
	t.Setenv("PATRONI_RESTAPI_USERNAME", "admin")
	t.Setenv("PATRONI_RESTAPI_PASSWORD", "api-secret")
	t.Setenv("PATRONI_NAME", "n1")
	t.Setenv("TUSKER_TEST_MARKER", "visible")

	env := os.Environ()
	names, err := scrubSecrets(env)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"PATRONI_SUPERUSER_PASSWORD", "PATRONI_REPLICATION_PASSWORD", "PATRONI_RESTAPI_PASSWORD"}, names)
	for _, n := range names {
		_, set := os.LookupEnv(n)
		assert.False(t, set, n)
	}

	out, err := exec.Command("/bin/sh", "-c", "env").Output()
	require.NoError(t, err)
	child := string(out)
	for _, secret := range []string{"su-secret", "rep-secret", "api-secret", "_PASSWORD="} {
		assert.NotContains(t, child, secret)
	}
	assert.Contains(t, child, "PATRONI_NAME=n1\n")
	assert.Contains(t, child, "PATRONI_RESTAPI_USERNAME=admin\n")
	assert.Contains(t, child, "TUSKER_TEST_MARKER=visible\n")

	// A reload (SIGHUP, POST /reload) reads the copy taken at start.
	cfg, err := config.LoadWithEnv(path, env)
	require.NoError(t, err)
	a := cfg.PostgreSQL.Authentication
	assert.Equal(t, "su-secret", a.Superuser.Password)
	assert.Equal(t, "rep-secret", a.Replication.Password)
	require.NotNil(t, cfg.RestAPI.Authentication)
	assert.Equal(t, "api-secret", cfg.RestAPI.Authentication.Password)
	assert.False(t, strings.Contains(strings.Join(os.Environ(), "\n"), "secret"))
}
