package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/test/harness"
)

// environOf reads a process's environment from /proc (NUL-separated entries).
func environOf(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// TestSecretsStayOutOfChildren: passwords given as PATRONI_* variables reach tusker (through
// init's re-exec of the daemon, and again on SIGHUP) but neither the postmaster nor a callback:
// their environments, read from /proc, hold none of the secret variables or their values. The
// postmaster gets no PATRONI_* variable at all (as with Patroni); a callback keeps the others.
func TestSecretsStayOutOfChildren(t *testing.T) {
	e := newCluster(t, 2, "")
	// Not the passwords of the configuration file: the cluster only works if these arrived.
	const suPW, replPW, apiPW = "env-super-4c1d", "env-repl-9b2e", "env-rest-77f0"
	secrets := []string{suPW, replPW, apiPW}
	envFile := func(n *harness.Node) string { return filepath.Join(n.Dir, "callback-environ") }
	for _, n := range e.c.Nodes {
		script := filepath.Join(n.Dir, "environ.sh")
		require.NoError(t, os.WriteFile(script, []byte(fmt.Sprintf(
			"#!/bin/sh\ncat /proc/$$/environ > %[1]s.tmp && mv %[1]s.tmp %[1]s\n", envFile(n))), 0o755))
		n.PGExtra = "  callbacks:\n    on_start: " + script + "\n"
		require.NoError(t, e.c.WriteConfig(n, ""))
		n.Env = []string{
			"TUSKER_INIT=1", // init re-executes the daemon, which must still see them
			"PATRONI_SUPERUSER_PASSWORD=" + suPW,
			"PATRONI_REPLICATION_PASSWORD=" + replPW,
			"PATRONI_RESTAPI_USERNAME=admin",
			"PATRONI_RESTAPI_PASSWORD=" + apiPW,
			"PATRONI_NAME=" + n.Name,
			"TUSKER_TEST_MARKER=marker-" + n.Name,
		}
	}
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(120 * time.Second) // the replica cloned with the replication password from the environment
	ctx := context.Background()

	// The superuser's password is the one from the environment.
	connect := func(pw string) error {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, fmt.Sprintf("host=%s port=%d user=postgres password=%s dbname=postgres sslmode=disable",
			p.Host, p.PGPort, pw))
		if err == nil {
			conn.Close(cctx)
		}
		return err
	}
	require.NoError(t, connect(suPW))
	var pgErr *pgconn.PgError
	require.True(t, errors.As(connect(harness.SuperuserPassword), &pgErr), "the file's password must not work")

	for _, n := range e.c.Nodes {
		pm := n.PostmasterPID()
		require.NotZero(t, pm, n.Name)
		env := environOf(t, fmt.Sprintf("/proc/%d/environ", pm))
		require.Contains(t, env, "TUSKER_TEST_MARKER=marker-"+n.Name, "%s: not the postmaster's environment", n.Name)
		for _, kv := range env {
			assert.False(t, strings.HasPrefix(kv, "PATRONI_"), "%s: the postmaster has %s", n.Name, kv)
			for _, s := range secrets {
				assert.NotContains(t, kv, s, "%s: the postmaster's environment", n.Name)
			}
		}

		waitFor(t, 20*time.Second, n.Name+"'s on_start callback", func() error {
			_, err := os.Stat(envFile(n))
			return err
		})
		env = environOf(t, envFile(n))
		require.Contains(t, env, "TUSKER_TEST_MARKER=marker-"+n.Name, n.Name)
		assert.Contains(t, env, "PATRONI_NAME="+n.Name, "%s: a callback keeps the PATRONI_* variables that are no secret", n.Name)
		assert.Contains(t, env, "PATRONI_RESTAPI_USERNAME=admin", n.Name)
		for _, kv := range env {
			name, _, _ := strings.Cut(kv, "=")
			assert.False(t, config.IsSecretEnv(name), "%s: the callback has %s", n.Name, name)
			for _, s := range secrets {
				assert.NotContains(t, kv, s, "%s: the callback's environment", n.Name)
			}
		}
	}

	// SIGHUP re-reads the configuration: the passwords from the environment stay (the replica's
	// passfile is written again on the reload).
	r := others(e.c, p)[0]
	reloads := strings.Count(r.Log(), "postgres configuration reloaded")
	r.Signal(syscall.SIGHUP) // init forwards it to the daemon
	waitFor(t, 20*time.Second, "reload after SIGHUP", func() error {
		if strings.Count(r.Log(), "postgres configuration reloaded") <= reloads {
			return errors.New("not reloaded yet")
		}
		return nil
	})
	pgpass := readFile(filepath.Join(r.Dir, "pgpass"))
	assert.Contains(t, pgpass, ":replicator:"+replPW+"\n")
	assert.NotContains(t, pgpass, harness.ReplicationPassword)
	require.NoError(t, e.c.Healthy(ctx))
}
