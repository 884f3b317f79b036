// Package e2e runs real tusker binaries on real PostgreSQL 15 and a real etcd.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) {
	harness.Main(m, func(binDir string) error {
		var flags []string
		if os.Getenv("TUSKER_E2E_RACE") != "" {
			// make test runs the lifecycle test once more with a race-detecting daemon.
			flags = append(flags, "-race")
		}
		if err := harness.GoBuild(binDir, "tusker", "github.com/tusker-ha/tusker/cmd/tusker", flags...); err != nil {
			return err
		}
		if err := harness.GoBuild(binDir, "tuskerctl", "github.com/tusker-ha/tusker/cmd/tuskerctl"); err != nil {
			return err
		}
		if err := harness.PrepareConsul(binDir); err != nil {
			return err
		}
		if err := harness.CheckZooKeeper(binDir); err != nil {
			return err
		}
		return harness.PrepareKube(binDir) // etcd too
	}, harness.WithStranger())
}

type env struct {
	t    *testing.T
	etcd *harness.Etcd
	c    *harness.Cluster
}

func newCluster(t *testing.T, nodes int, extra string) *env {
	t.Helper()
	return newClusterWith(t, nil, harness.ClusterOptions{Scope: "e2e", Nodes: nodes, ExtraLocal: extra})
}

// newClusterWith makes a cluster of o on etcd e (a new etcd when nil), with the defaults of every
// e2e cluster filled in, and stops it when the test ends.
func newClusterWith(t *testing.T, e *harness.Etcd, o harness.ClusterOptions) *env {
	t.Helper()
	if e == nil {
		e = harness.StartEtcd(t)
	}
	o.Dir, o.TuskerBin, o.PGBinDir, o.EtcdHost = t.TempDir(), harness.Bin(t, "tusker"), harness.PGBinDir(t), e.HostPort
	c, err := harness.NewCluster(o)
	require.NoError(t, err)
	t.Cleanup(func() {
		// Runs after the cluster stopped (cleanups run last first): a daemon built with -race
		// reports a data race on its stderr, which is its log.
		for _, n := range c.Nodes {
			if log := n.Log(); strings.Contains(log, "WARNING: DATA RACE") {
				t.Errorf("tusker %s reported a data race:\n%s", n.Name, log[strings.Index(log, "WARNING: DATA RACE"):])
			}
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("==== log of %s ====\n%s", n.Name, tail(n.Log(), 80))
			}
		}
		c.Stop(30 * time.Second)
	})
	return &env{t: t, etcd: e, c: c}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

func (e *env) waitHealthy(timeout time.Duration) *harness.Node {
	e.t.Helper()
	ctx := context.Background()
	require.NoError(e.t, harness.WaitFor(ctx, timeout, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	p, err := e.c.Primary(ctx)
	require.NoError(e.t, err)
	return p
}

// waitRow waits until node n can read the row with id.
func waitRow(t *testing.T, n *harness.Node, id int) {
	t.Helper()
	waitRowWithin(t, n, id, 30*time.Second)
}

// waitRowWithin is waitRow with a deadline of its own (WAL that comes through the archive).
func waitRowWithin(t *testing.T, n *harness.Node, id int, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, harness.WaitFor(ctx, timeout, 100*time.Millisecond, func() error {
		v, err := n.QueryString(ctx, "SELECT v FROM t WHERE id = $1", id)
		if err != nil {
			return err
		}
		if v != fmt.Sprintf("row-%d", id) {
			return fmt.Errorf("row %d has %q", id, v)
		}
		return nil
	}), "row %d on %s", id, n.Name)
}

func insert(t *testing.T, n *harness.Node, id int) {
	t.Helper()
	require.NoError(t, n.Exec(context.Background(), "INSERT INTO t VALUES ($1, $2)", id, fmt.Sprintf("row-%d", id)))
}

// seed creates table t on the primary with row 1 and waits until every other node has it.
func seed(t *testing.T, c *harness.Cluster, primary *harness.Node) {
	t.Helper()
	require.NoError(t, primary.Exec(context.Background(), "CREATE TABLE t (id int PRIMARY KEY, v text)"))
	insert(t, primary, 1)
	for _, n := range others(c, primary) {
		waitRow(t, n, 1)
	}
}

func others(c *harness.Cluster, not ...*harness.Node) []*harness.Node {
	var out []*harness.Node
next:
	for _, n := range c.Nodes {
		for _, x := range not {
			if n == x {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// TestClusterLifecycle walks one cluster through bootstrap, replication, an unplanned failover
// (SIGKILL of the primary's node), the old primary's rejoin, and a SIGTERM handover, on every DCS
// tusker speaks (see dcs_matrix_test.go).
func TestClusterLifecycle(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { lifecycle(t, newClusterOn(t, 3, s)) })
	}
}

func lifecycle(t *testing.T, e *env) {
	ctx := context.Background()
	require.NoError(t, e.c.Start())
	primary := e.waitHealthy(90 * time.Second)
	t.Logf("bootstrapped: primary %s", primary.Name)

	// Each replica streams through its own slot.
	require.NoError(t, harness.WaitFor(ctx, 20*time.Second, 200*time.Millisecond, func() error {
		s, err := primary.QueryString(ctx, "SELECT string_agg(slot_name || ':' || active::text, ',' ORDER BY slot_name) FROM pg_replication_slots")
		if err != nil {
			return err
		}
		var want []string
		for _, n := range others(e.c, primary) {
			want = append(want, n.Name+":true")
		}
		if s != strings.Join(want, ",") {
			return fmt.Errorf("slots %q, want %q", s, strings.Join(want, ","))
		}
		return nil
	}))

	// A row written on the primary is read on both replicas.
	seed(t, e.c, primary)

	// The primary's machine dies: a replica takes over and has the row.
	old := primary
	old.KillNode()
	var next *harness.Node
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
		p, err := e.c.Primary(ctx)
		if err != nil {
			return err
		}
		next = p
		return nil
	}))
	require.NotEqual(t, old.Name, next.Name)
	t.Logf("failover: %s -> %s", old.Name, next.Name)
	waitRow(t, next, 1)
	insert(t, next, 2)
	for _, n := range others(e.c, old, next) {
		waitRow(t, n, 2) // the other replica follows the new primary
	}

	// The old node comes back as a replica of the new primary.
	require.NoError(t, old.Start())
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	p, err := e.c.Primary(ctx)
	require.NoError(t, err)
	require.Equal(t, next.Name, p.Name, "the rejoining node must not take over")
	// tuskerctl reads the same store with a member's own configuration (and environment).
	r := &ctlRunner{t: t, bin: ctlBin(t), cfg: old.ConfigPath, env: old.Env}
	require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 500*time.Millisecond, func() error {
		m := r.members()
		if len(m) != 3 || m[next.Name]["Role"] != "Leader" {
			return fmt.Errorf("tuskerctl list: %v", m)
		}
		for _, n := range others(e.c, next) {
			if m[n.Name]["State"] != "streaming" {
				return fmt.Errorf("tuskerctl list: %s is %v", n.Name, m[n.Name]["State"])
			}
		}
		return nil
	}))
	insert(t, next, 3)
	waitRow(t, old, 3)
	waitRow(t, old, 2)

	// SIGTERM of the leader: postgres stops cleanly, the lock is released, another node leads.
	// While it shuts down, its REST API says so (the replicas probe it before they race for the
	// lock it releases: a status still saying "running" made them wait a loop_wait).
	states := watchStates(next)
	next.Signal(syscall.SIGTERM)
	require.True(t, next.WaitExit(60*time.Second), "tusker did not exit after SIGTERM")
	require.Contains(t, states(), "stopping", "the stopping leader's /patroni states: %v", states())
	require.Equal(t, 0, next.ExitCode())
	require.Contains(t, next.Log(), "released the leader key")
	require.Zero(t, next.PostmasterPID(), "postgres left running after SIGTERM")
	var after *harness.Node
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
		p, err := e.c.Primary(ctx)
		if err == nil {
			after = p
		}
		return err
	}))
	require.NotEqual(t, next.Name, after.Name)
	waitRow(t, after, 3)
	insert(t, after, 4)
	for _, n := range others(e.c, next, after) {
		waitRow(t, n, 4)
	}
}

// watchStates polls a node's /patroni every few ms until it stops answering and returns a
// function giving the distinct states it reported, in order.
func watchStates(n *harness.Node) func() []string {
	var mu sync.Mutex
	var seen []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		failures := 0
		for failures < 50 {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			st, _, err := n.Patroni(ctx)
			cancel()
			if err != nil {
				failures++
			} else if s, _ := st["state"].(string); s != "" {
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != s {
					seen = append(seen, s)
				}
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// stallReplication freezes the WAL receivers of the given replicas so that the primary can write
// WAL they never apply; the returned function kills them. (Thawing with SIGCONT would deliver what
// the primary already sent into their socket buffers; a killed WAL receiver makes the replica's
// postmaster restart, losing it.)
func stallReplication(t *testing.T, replicas []*harness.Node) func() {
	t.Helper()
	ctx := context.Background()
	var pids []int
	for _, r := range replicas {
		s, err := r.QueryString(ctx, "SELECT pid::text FROM pg_stat_wal_receiver")
		require.NoError(t, err)
		var pid int
		_, err = fmt.Sscan(s, &pid)
		require.NoError(t, err)
		require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
		pids = append(pids, pid)
	}
	return func() {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestRejoinAfterDivergence makes the old primary write WAL that no replica received before its
// machine dies. On return it must not stream from the new primary on its diverged timeline: it is
// rewound with pg_rewind and the unreplicated row is gone; then, with pg_rewind disabled and
// remove_data_directory_on_diverged_timelines on, the same situation is fixed by a fresh clone.
func TestRejoinAfterDivergence(t *testing.T) {
	e := newCluster(t, 3, "")
	ctx := context.Background()
	require.NoError(t, e.c.Start())
	primary := e.waitHealthy(90 * time.Second)
	seed(t, e.c, primary)

	diverge := func(old *harness.Node) *harness.Node {
		lose := stallReplication(t, others(e.c, old))
		insert(t, old, 100) // never reaches a replica
		require.NoError(t, old.Exec(ctx, "SELECT pg_switch_wal()"))
		old.KillNode()
		lose()
		var next *harness.Node
		require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 100*time.Millisecond, func() error {
			p, err := e.c.Primary(ctx)
			if err == nil {
				next = p
			}
			return err
		}))
		require.NotEqual(t, old.Name, next.Name)
		insert(t, next, int(time.Now().UnixNano()%1000000)+1000)
		return next
	}

	// 1. pg_rewind.
	old := primary
	next := diverge(old)
	require.NoError(t, old.Start())
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	insert(t, next, 2)
	waitRow(t, old, 2)
	n, err := old.QueryString(ctx, "SELECT count(*)::text FROM t WHERE id = 100")
	require.NoError(t, err)
	require.Equal(t, "0", n, "the diverged row must be gone after pg_rewind")
	require.Contains(t, old.Log(), "rewind done")

	// 2. A fresh clone when pg_rewind is not allowed.
	old = next
	next = diverge(old)
	old.PGExtra = "  use_pg_rewind: false\n  remove_data_directory_on_diverged_timelines: true"
	require.NoError(t, e.c.WriteConfig(old, ""))
	require.NoError(t, old.Start())
	require.NoError(t, harness.WaitFor(ctx, 90*time.Second, 200*time.Millisecond, func() error { return e.c.Healthy(ctx) }))
	insert(t, next, 3)
	waitRow(t, old, 3)
	n, err = old.QueryString(ctx, "SELECT count(*)::text FROM t WHERE id = 100")
	require.NoError(t, err)
	require.Equal(t, "0", n)
	require.Contains(t, old.Log(), "reclone done")
}

// TestBadInput: a broken configuration is reported with its key paths, an unreachable etcd is
// named, garbage in DCS keys does not disturb a running cluster, and a data directory of another
// cluster is refused, not overwritten.
func TestBadInput(t *testing.T) {
	bin := harness.Bin(t, "tusker")
	dir := t.TempDir()

	t.Run("validate-config reports every problem with its key path", func(t *testing.T) {
		p := filepath.Join(dir, "bad.yml")
		require.NoError(t, os.WriteFile(p, []byte(`scope: s
name: n
restapi:
  listen: [1, 2]
raft:
  data_dir: /tmp/raft
bootstrap:
  dcs:
    ttl: abc
postgresql:
  listen: 127.0.0.1:5432
`), 0o600))
		out, err := exec.Command(bin, "--validate-config", p).CombinedOutput()
		require.Error(t, err)
		s := string(out)
		for _, want := range []string{"restapi.listen", "bootstrap.dcs.ttl", "postgresql.data_dir", "raft: this DCS is not supported"} {
			require.Contains(t, s, want)
		}
	})

	t.Run("version", func(t *testing.T) {
		out, err := exec.Command(bin, "--version").CombinedOutput()
		require.NoError(t, err)
		require.Contains(t, string(out), "tusker ")
	})

	t.Run("unreachable etcd is named in the log", func(t *testing.T) {
		c, err := harness.NewCluster(harness.ClusterOptions{Dir: t.TempDir(), Scope: "noetcd", Nodes: 1,
			TuskerBin: bin, PGBinDir: harness.PGBinDir(t), EtcdHost: "127.0.0.1:1"})
		require.NoError(t, err)
		defer c.Stop(10 * time.Second)
		require.NoError(t, c.Start())
		ctx := context.Background()
		require.NoError(t, harness.WaitFor(ctx, 20*time.Second, 200*time.Millisecond, func() error {
			if !strings.Contains(c.Nodes[0].Log(), "127.0.0.1:1") {
				return fmt.Errorf("no mention of the etcd address yet")
			}
			return nil
		}))
		require.True(t, c.Nodes[0].Running(), "tusker must keep retrying, not crash")
	})

	t.Run("garbage in DCS keys and a foreign data directory", func(t *testing.T) {
		e := newCluster(t, 2, "")
		ctx := context.Background()
		require.NoError(t, e.c.Start())
		primary := e.waitHealthy(90 * time.Second)

		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd.Endpoint}, DialTimeout: 2 * time.Second})
		require.NoError(t, err)
		defer cli.Close()
		_, err = cli.Put(ctx, "/service/e2e/members/garbage", "{this is not json")
		require.NoError(t, err)
		_, err = cli.Put(ctx, "/service/e2e/history", `{"not":"a list"}`)
		require.NoError(t, err)
		_, err = cli.Put(ctx, "/service/e2e/failover", `[1,2,3]`)
		require.NoError(t, err)
		// Wait until every node has read the DCS twice more since the garbage went in.
		readBy := time.Now().Add(2 * time.Second).Unix()
		require.NoError(t, harness.WaitFor(ctx, 30*time.Second, 200*time.Millisecond, func() error {
			for _, n := range e.c.Nodes {
				st, _, err := n.Patroni(ctx)
				if err != nil {
					return fmt.Errorf("%s: %w", n.Name, err)
				}
				if seen, _ := st["dcs_last_seen"].(float64); int64(seen) < readBy {
					return fmt.Errorf("%s last read the DCS at %v", n.Name, st["dcs_last_seen"])
				}
			}
			return nil
		}))
		require.NoError(t, e.c.Healthy(ctx))
		p, err := e.c.Primary(ctx)
		require.NoError(t, err)
		require.Equal(t, primary.Name, p.Name)
		for _, n := range e.c.Nodes {
			require.True(t, n.Running(), "%s crashed on garbage keys", n.Name)
		}

		// Replace a replica's data directory with one of another cluster.
		replica := others(e.c, primary)[0]
		replica.KillNode()
		require.NoError(t, os.RemoveAll(replica.DataDir))
		out, err := exec.Command(filepath.Join(harness.PGBinDir(t), "initdb"), "-D", replica.DataDir, "-U", "postgres").CombinedOutput()
		require.NoError(t, err, string(out))
		before, err := os.ReadFile(filepath.Join(replica.DataDir, "global", "pg_control"))
		require.NoError(t, err)
		require.NoError(t, replica.Start())
		require.True(t, replica.WaitExit(30*time.Second), "tusker must stop on a foreign data directory")
		require.NotEqual(t, 0, replica.ExitCode())
		require.Contains(t, replica.Log(), "belongs to another cluster")
		after, err := os.ReadFile(filepath.Join(replica.DataDir, "global", "pg_control"))
		require.NoError(t, err)
		require.Equal(t, before, after, "the foreign data directory must not be touched")
	})
}
