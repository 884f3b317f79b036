package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/test/harness"
)

// TestStandbyCluster: a standby cluster of two members follows a primary cluster of three. It
// is bootstrapped with a base backup of the remote primary; rows written there appear on every
// standby member; a switchover inside the standby cluster moves the standby leader and the other
// member cascades from it; the primary cluster's failover is followed through the archive; a
// failover inside the standby cluster keeps it a standby cluster; pointed at the new primary's
// host, the standby leader streams from it; and the two clusters swap roles: demote-cluster on
// the primary cluster, then promote-cluster on the standby one, with no row lost and no rewind.
func TestStandbyCluster(t *testing.T) {
	br := newBackRest(t, "main")
	src := backupCluster(t, 3, "main", nil, br.archiving)
	ctx := context.Background()
	require.NoError(t, src.c.Start())
	p := src.waitHealthy(90 * time.Second)
	seed(t, src.c, p)
	br.backupOf(src.c, p)

	get := br.get + ` %f "%p"`
	dst := backupCluster(t, 2, "standby", src.etcd, func(o *harness.ClusterOptions) {
		o.Dynamic = fmt.Sprintf("standby_cluster:\n  host: %s\n  port: %d\n  restore_command: '%s'\n", p.Host, p.PGPort, get)
	})
	c := dst.c
	s1, s2 := c.Nodes[0], c.Nodes[1]
	require.NoError(t, s1.Start())
	waitRole(t, s1, "standby_leader", 120*time.Second)
	require.NoError(t, s2.Start())
	waitRole(t, s2, "replica", 120*time.Second)
	for _, n := range c.Nodes {
		waitRow(t, n, 1)
	}
	require.Equal(t, 200, s1.Check(ctx, "/standby-leader"))
	require.Equal(t, 200, s1.Check(ctx, "/leader"))
	require.Equal(t, 503, s1.Check(ctx, "/primary"), "a standby leader is no primary")
	require.Equal(t, 503, s2.Check(ctx, "/standby-leader"))
	requireLogLine(t, s1.Log(), `msg="bootstrapped a new cluster"`, "role=standby_leader")
	waitStreamingFrom(t, s1, p)
	insert(t, p, 2)
	for _, n := range c.Nodes {
		waitRow(t, n, 2)
	}

	// A switchover inside the standby cluster: s2 becomes the standby leader, s1 cascades from it.
	ctl := ctlFor(t, dst, "standby")
	res := ctl.run("", "switchover", "--leader", s1.Name, "--candidate", s2.Name, "--force")
	require.Equal(t, 0, res.code, res.err)
	waitRole(t, s2, "standby_leader", 60*time.Second)
	waitRole(t, s1, "replica", 60*time.Second)
	waitStreamingFrom(t, s2, p)
	waitStreamingFrom(t, s1, s2)
	insert(t, p, 3)
	for _, n := range c.Nodes {
		waitRow(t, n, 3)
	}

	// The primary cluster fails over; the standby cluster goes on through the archive.
	p.KillNode()
	np := waitNewPrimary(t, src.c, p, 60*time.Second)
	insert(t, np, 4)
	archived(t, np)
	for _, n := range c.Nodes {
		waitRowWithin(t, n, 4, 90*time.Second)
	}

	// A failover inside the standby cluster: s1 becomes the standby leader again; s2, restarted,
	// rejoins as its replica.
	s2.KillNode()
	waitRole(t, s1, "standby_leader", 60*time.Second)
	insert(t, np, 5)
	archived(t, np)
	waitRowWithin(t, s1, 5, 90*time.Second)
	require.Error(t, s1.Exec(ctx, "INSERT INTO t VALUES (100, 'x')"), "a standby cluster takes no writes")
	require.NoError(t, s2.Start())
	waitRole(t, s2, "replica", 60*time.Second)
	waitRow(t, s2, 5)

	// The remote host moves: pointed at the new primary, the standby leader streams from it
	// without a restart.
	res = ctl.run("", "edit-config", "--force", "--set", "standby_cluster.host="+np.Host,
		"--set", fmt.Sprintf("standby_cluster.port=%d", np.PGPort))
	require.Equal(t, 0, res.code, res.err)
	waitStreamingFrom(t, s1, np)
	requireLogLine(t, s1.Log(), "standby_cluster changed: following the remote primary again")
	insert(t, np, 6)
	for _, n := range c.Nodes {
		waitRow(t, n, 6)
	}

	// The clusters swap roles. demote-cluster first: the primary cluster's primary stops cleanly
	// (its last WAL reaches s1, which streams from it) and becomes a standby leader of s1.
	srcCtl := ctlFor(t, src, "main")
	res = srcCtl.run("", "demote-cluster", "--host", s1.Host, "--port", fmt.Sprint(s1.PGPort), "--force")
	require.Equal(t, 0, res.code, res.err)
	waitRole(t, np, "standby_leader", 60*time.Second)
	require.Equal(t, 200, np.Check(ctx, "/standby-leader"))
	require.Error(t, np.Exec(ctx, "INSERT INTO t VALUES (101, 'x')"), "a demoted cluster takes no writes")

	// promote-cluster: the standby leader is promoted and takes writes, and the former primary
	// cluster follows it onto the new timeline.
	res = ctl.run("", "promote-cluster", "--force")
	require.Equal(t, 0, res.code, res.err)
	waitRole(t, s1, "primary", 60*time.Second)
	require.Equal(t, 200, s1.Check(ctx, "/primary"))
	insert(t, s1, 7)
	for _, n := range append([]*harness.Node{s2}, src.c.Nodes...) {
		if n != p {
			waitRowWithin(t, n, 7, 90*time.Second)
		}
	}
	waitStreamingFrom(t, np, s1)
	for _, n := range append(append([]*harness.Node{}, c.Nodes...), src.c.Nodes...) {
		if n != p {
			require.NotContains(t, n.Log(), "timeline diverged", "%s: no rewind or re-clone in a planned role swap", n.Name)
		}
	}
}

// ctlFor is a tuskerctl for the cluster named scope in e's etcd.
func ctlFor(t *testing.T, e *env, scope string) *ctlRunner {
	t.Helper()
	r := newCtl(t, e)
	cfg := fmt.Sprintf("scope: %s\nnamespace: /service\netcd3:\n  hosts: %s\n", scope, e.etcd.HostPort)
	require.NoError(t, os.WriteFile(r.cfg, []byte(cfg), 0o600))
	return r
}

// waitStreamingFrom waits until n's WAL receiver streams from up.
func waitStreamingFrom(t *testing.T, n, up *harness.Node) {
	t.Helper()
	want := fmt.Sprintf("streaming:%d", up.PGPort)
	require.NoError(t, harness.WaitFor(context.Background(), 60*time.Second, 200*time.Millisecond, func() error {
		s, err := n.QueryString(context.Background(), "SELECT status || ':' || sender_port FROM pg_stat_wal_receiver")
		if err != nil {
			return err
		}
		if s != want {
			return fmt.Errorf("%s: WAL receiver %q, want %q", n.Name, s, want)
		}
		return nil
	}), "%s streaming from %s", n.Name, up.Name)
}

// waitRole waits until n's GET /patroni says role and state running.
func waitRole(t *testing.T, n *harness.Node, role string, timeout time.Duration) {
	t.Helper()
	require.NoError(t, harness.WaitFor(context.Background(), timeout, 200*time.Millisecond, func() error {
		st, _, err := n.Patroni(context.Background())
		if err != nil {
			return err
		}
		if st["role"] != role || st["state"] != "running" {
			return fmt.Errorf("%s: role %v state %v, want %s running", n.Name, st["role"], st["state"], role)
		}
		return nil
	}), "%s as %s", n.Name, role)
}
