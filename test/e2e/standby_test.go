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
// standby member; the primary cluster's failover is followed through the archive; a failover
// inside the standby cluster keeps it a standby cluster; and promote-cluster makes it writable.
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
	s, err := s1.QueryString(ctx, "SELECT status || ':' || sender_port FROM pg_stat_wal_receiver")
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("streaming:%d", p.PGPort), s, "the standby leader streams from the remote primary")
	insert(t, p, 2)
	for _, n := range c.Nodes {
		waitRow(t, n, 2)
	}

	// The primary cluster fails over; the standby cluster goes on through the archive.
	p.KillNode()
	var np *harness.Node
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error {
		n, err := src.c.Primary(ctx)
		if err == nil && n != p {
			np = n
			return nil
		}
		return fmt.Errorf("no new primary yet")
	}))
	insert(t, np, 3)
	archived(t, np)
	for _, n := range c.Nodes {
		waitRowWithin(t, n, 3, 90*time.Second)
	}

	// A failover inside the standby cluster: s2 becomes the standby leader.
	s1.KillNode()
	waitRole(t, s2, "standby_leader", 60*time.Second)
	insert(t, np, 4)
	archived(t, np)
	waitRowWithin(t, s2, 4, 90*time.Second)
	require.Error(t, s2.Exec(ctx, "INSERT INTO t VALUES (100, 'x')"), "a standby cluster takes no writes")

	// promote-cluster: the standby leader is promoted and takes writes.
	ctl := newCtl(t, dst)
	require.NoError(t, os.WriteFile(ctl.cfg, []byte(fmt.Sprintf("scope: standby\nnamespace: /service\netcd3:\n  hosts: %s\n", dst.etcd.HostPort)), 0o600))
	res := ctl.run("", "promote-cluster", "--force")
	require.Equal(t, 0, res.code, res.err)
	waitRole(t, s2, "primary", 60*time.Second)
	require.Equal(t, 200, s2.Check(ctx, "/primary"))
	insert(t, s2, 5)
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
