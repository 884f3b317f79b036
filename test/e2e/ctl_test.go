package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// ctlBin is the tuskerctl binary TestMain built.
func ctlBin(t *testing.T) string {
	t.Helper()
	p := filepath.Join(os.Getenv("TUSKER_TEST_BINDIR"), "tuskerctl")
	require.True(t, fileExists(p), "TestMain did not build tuskerctl into %s", p)
	return p
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// ctlResult is one run of tuskerctl.
type ctlResult struct {
	out, err string
	code     int
	took     time.Duration
}

// ctl runs the tuskerctl binary with stdin and extra environment.
type ctlRunner struct {
	t   *testing.T
	bin string
	cfg string
	env []string
}

func newCtl(t *testing.T, e *env) *ctlRunner {
	cfg := filepath.Join(t.TempDir(), "tuskerctl.yml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("scope: e2e\netcd3:\n  hosts: %s\n", e.etcd.HostPort)), 0o600))
	return &ctlRunner{t: t, bin: ctlBin(t), cfg: cfg}
}

func (r *ctlRunner) run(stdin string, args ...string) ctlResult {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"-c", r.cfg}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), r.env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err := cmd.Run()
	res := ctlResult{out: out.String(), err: errOut.String(), took: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else {
		require.NoError(r.t, err, "running tuskerctl %v", args)
	}
	r.t.Logf("$ tuskerctl %s  (exit %d, %s)\n%s%s", strings.Join(args, " "), res.code, res.took.Round(time.Millisecond), res.out, res.err)
	return res
}

// ok runs tuskerctl and requires exit status 0.
func (r *ctlRunner) ok(stdin string, args ...string) string {
	r.t.Helper()
	res := r.run(stdin, args...)
	require.Equal(r.t, 0, res.code, "tuskerctl %v\nstdout:\n%s\nstderr:\n%s", args, res.out, res.err)
	return res.out
}

// members runs list -f json and returns the rows by member name.
func (r *ctlRunner) members() map[string]map[string]any {
	r.t.Helper()
	var rows []map[string]any
	out := r.ok("", "list", "-f", "json")
	require.NoError(r.t, json.Unmarshal([]byte(out), &rows), out)
	m := map[string]map[string]any{}
	for _, row := range rows {
		m[row["Member"].(string)] = row
	}
	return m
}

// TestCtlCluster drives the tuskerctl binary against one live three-node cluster, command by
// command, the way an operator would: look, switch over, pause, change the configuration,
// restart, rebuild a replica, and finally remove the cluster from the DCS.
func TestCtlCluster(t *testing.T) {
	e := newCluster(t, 3, "")
	require.NoError(t, e.c.Start())
	primary := e.waitHealthy(90 * time.Second)
	ctl := newCtl(t, e)
	ctx := context.Background()

	// Plain HTTP without authentication: the same status codes as over TLS (rest_test.go).
	t.Run("every REST endpoint over plain HTTP", func(t *testing.T) {
		waitFor(t, 30*time.Second, "replicas caught up", func() error {
			for _, r := range others(e.c, primary) {
				if code := r.Check(ctx, "/replica?lag=1MB"); code != 200 {
					return fmt.Errorf("%s: /replica?lag=1MB = %d", r.Name, code)
				}
			}
			return nil
		})
		checkEveryEndpoint(t, e.c, primary)
		code, msg := call(t, primary, "POST", "/reload", nil)
		require.Equal(t, 202, code, "no authentication configured: %s", msg)
	})

	t.Run("list", func(t *testing.T) {
		out := ctl.ok("", "list")
		require.Contains(t, out, "+ Cluster: e2e (")
		for _, n := range e.c.Nodes {
			require.Contains(t, out, "| "+n.Name+" ")
		}
		require.Contains(t, out, "| Leader ")
		ms := ctl.members()
		require.Len(t, ms, 3)
		leaders := 0
		for name, m := range ms {
			if m["Role"] == "Leader" {
				leaders++
				require.Equal(t, primary.Name, name)
			}
		}
		require.Equal(t, 1, leaders)
		require.Contains(t, ctl.ok("", "topology"), "| + ")
	})

	t.Run("version dsn query show-config", func(t *testing.T) {
		out := ctl.ok("", "version", "e2e")
		require.Contains(t, out, "tuskerctl version ")
		for _, n := range e.c.Nodes {
			require.Regexp(t, n.Name+`: tusker \S+ PostgreSQL 15\.\d+`, out)
		}
		require.Equal(t, fmt.Sprintf("host=127.0.0.1 port=%d\n", primary.PGPort), ctl.ok("", "dsn"))

		ctl.env = []string{"PGPASSWORD=" + harness.SuperuserPassword}
		require.Equal(t, "?column?\n1\n", ctl.ok("", "query", "-U", "postgres", "-c", "select 1"))
		out = ctl.ok("", "query", "-U", "postgres", "-r", "replica", "--format", "json", "-c", "select pg_is_in_recovery() as r")
		require.Equal(t, `[{"r": "t"}]`+"\n", out)
		ctl.env = nil

		require.Contains(t, ctl.ok("", "show-config"), "max_connections: 40")
	})

	cand := others(e.c, primary)[0]
	t.Run("switchover", func(t *testing.T) {
		out := ctl.ok("", "switchover", "--candidate", cand.Name, "--force")
		require.Contains(t, out, fmt.Sprintf("Successfully switched over to %q", cand.Name))
		waitPrimary(t, e.c, cand, 60*time.Second)
		primary = cand

		var rows []map[string]any
		out = ctl.ok("", "history", "-f", "json")
		require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
		require.NotEmpty(t, rows, "the promotion is in the history")
		require.Contains(t, ctl.ok("", "history"), "| TL |")
	})

	t.Run("pause and resume", func(t *testing.T) {
		out := ctl.ok("", "pause", "--wait")
		require.Contains(t, out, "Success: cluster management is paused")
		require.Contains(t, ctl.ok("", "list"), " Maintenance mode: on")
		for _, n := range e.c.Nodes {
			require.Equal(t, true, field(n, "pause"), "%s /patroni pause", n.Name)
		}
		res := ctl.run("", "pause")
		require.Equal(t, 1, res.code)
		require.Contains(t, res.err, "Cluster is already paused")

		require.Contains(t, ctl.ok("", "resume", "--wait"), "Success: cluster management is resumed")
		for _, n := range e.c.Nodes {
			require.Nil(t, field(n, "pause"), "%s /patroni pause", n.Name)
		}
		require.NotContains(t, ctl.ok("", "list"), "Maintenance mode")
	})

	t.Run("edit-config", func(t *testing.T) {
		out := ctl.ok("", "edit-config", "-s", "loop_wait=2", "-p", "max_connections=123", "--force")
		require.Contains(t, out, "+    max_connections: 123")
		require.Contains(t, out, "Configuration changed")
		code, body := call(t, e.c.Nodes[0], "GET", "/config", nil)
		require.Equal(t, 200, code, body)
		var cfg struct {
			LoopWait   int `json:"loop_wait"`
			PostgreSQL struct {
				Parameters map[string]any `json:"parameters"`
			} `json:"postgresql"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &cfg))
		require.Equal(t, 2, cfg.LoopWait)
		require.EqualValues(t, 123, cfg.PostgreSQL.Parameters["max_connections"])
		require.Equal(t, "Not changing configuration.\n", ctl.ok("", "edit-config", "-s", "loop_wait=2", "--force"))

		// max_connections needs a restart: every member says so.
		waitFor(t, 30*time.Second, "pending restart on every member", func() error {
			for name, m := range ctl.members() {
				if m["Pending restart"] != "*" {
					return fmt.Errorf("%s: %v", name, m)
				}
			}
			return nil
		})
		require.Contains(t, ctl.ok("", "list", "-e"), "max_connections: 40->123")
	})

	reps := others(e.c, primary)
	t.Run("restart", func(t *testing.T) {
		r := reps[0]
		out := ctl.ok("", "restart", "e2e", r.Name, "--force")
		require.Equal(t, "Success: restart on member "+r.Name+"\n", out)
		n, err := r.QueryString(ctx, "SHOW max_connections")
		require.NoError(t, err)
		require.Equal(t, "123", n)
		waitFor(t, 30*time.Second, "no pending restart on "+r.Name, func() error {
			if m := ctl.members()[r.Name]; m["Pending restart"] != nil {
				return fmt.Errorf("%v", m)
			}
			return nil
		})
	})

	t.Run("reinit", func(t *testing.T) {
		r := reps[1]
		out := ctl.ok("", "reinit", "e2e", r.Name, "--force", "--wait")
		require.Contains(t, out, "Success: reinitialize for member "+r.Name)
		require.Contains(t, out, "Reinitialize is completed on: "+r.Name)
		require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	})

	// Mistakes are named, with exit status 1 for a refused operation and 2 for a wrong
	// invocation, and an unreachable DCS is reported within seconds.
	t.Run("errors", func(t *testing.T) {
		res := ctl.run("", "restart", "e2e", "n9", "--force")
		assert.Equal(t, 1, res.code)
		assert.Equal(t, "tuskerctl: \"n9\" is not a member of cluster \"e2e\" (members: n1, n2, n3)\n", res.err)

		res = ctl.run("", "list", "--nope")
		assert.Equal(t, 2, res.code)
		assert.Contains(t, res.err, "unknown flag: --nope")

		res = ctl.run("", "list", "other")
		assert.Equal(t, 1, res.code)
		assert.Contains(t, res.err, `cluster "other" not found in namespace /service`)

		res = ctl.run("", "-d", "etcd3://127.0.0.1:1", "list", "e2e")
		assert.Equal(t, 1, res.code)
		assert.Contains(t, res.err, "cannot reach the DCS at http://127.0.0.1:1")
		assert.Less(t, res.took, 10*time.Second)

		res = ctl.run("", "switchover", "--candidate", primary.Name, "--force")
		assert.Equal(t, 1, res.code)
		assert.Contains(t, res.err, "is already the leader")

		res = ctl.run("n\n", "restart", "e2e", reps[0].Name)
		assert.Equal(t, 1, res.code, "answered no")
		assert.Contains(t, res.err, "Aborted")
	})

	t.Run("remove", func(t *testing.T) {
		res := ctl.run("e2e\nYes I am aware\nnobody\n", "remove", "e2e")
		require.Equal(t, 1, res.code, res.err)
		require.Contains(t, res.err, "You did not specify the current leader of the cluster")

		out := ctl.ok(fmt.Sprintf("e2e\nYes I am aware\n%s\n", primary.Name), "remove", "e2e")
		require.Contains(t, out, "Cluster e2e removed from the DCS")
	})
}
