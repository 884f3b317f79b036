package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.PrepareEtcd) }

func newBackend(t *testing.T, e *harness.Etcd, name string, ttl time.Duration) *Backend {
	t.Helper()
	b, err := New(Options{Endpoints: []string{e.Endpoint}, Namespace: "/service", Scope: "c1", Name: name,
		TTL: ttl, RetryTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func raw(t *testing.T, e *harness.Etcd) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func TestEtcdBackend(t *testing.T) {
	e := harness.StartEtcd(t)
	ctx := context.Background()
	a := newBackend(t, e, "a", 2*time.Second)
	b := newBackend(t, e, "b", 2*time.Second)

	t.Run("initialize race has one winner", func(t *testing.T) {
		ok, err := a.Initialize(ctx, "", true)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.Initialize(ctx, "", true)
		require.NoError(t, err)
		require.False(t, ok)
		_, err = a.Initialize(ctx, "7000000000000000001", false)
		require.NoError(t, err)
		c, err := b.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "7000000000000000001", *c.Initialize)
	})

	t.Run("leader acquire, renew, conflict, release", func(t *testing.T) {
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary", APIURL: "http://a/patroni"}))
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		ok, err = b.AcquireLeader(ctx)
		require.NoError(t, err)
		require.False(t, ok, "second member must not take a held leader key")
		require.NoError(t, a.RenewLeader(ctx))
		require.ErrorIs(t, b.RenewLeader(ctx), dcs.ErrNotLeader)
		c, err := b.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "a", c.LeaderName())
		require.Len(t, c.Members, 2)
		require.Equal(t, "primary", c.Member("a").Data.Role)
		require.NoError(t, b.ReleaseLeader(ctx)) // not b's: a no-op
		c, _ = b.Cluster(ctx)
		require.Equal(t, "a", c.LeaderName())
		require.NoError(t, a.ReleaseLeader(ctx))
		c, _ = b.Cluster(ctx)
		require.Nil(t, c.Leader)
	})

	t.Run("leader key expires with the lease and a watcher wakes", func(t *testing.T) {
		drain(b.Changes())
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		waitChange(t, b.Changes())
		// a stops renewing: after ttl the key is gone and b may take it.
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := b.Cluster(ctx)
			require.NoError(t, err)
			if c.Leader == nil {
				require.Nil(t, c.Member("a"), "the member key shares the lease")
				break
			}
			require.True(t, time.Now().Before(deadline), "leader key did not expire")
			time.Sleep(100 * time.Millisecond)
		}
		ok, err = b.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.ErrorIs(t, a.RenewLeader(ctx), dcs.ErrNotLeader)
		require.NoError(t, b.ReleaseLeader(ctx))
	})

	t.Run("config and failover CAS", func(t *testing.T) {
		require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":6}`), 0))
		require.ErrorIs(t, b.SetConfig(ctx, []byte(`{"ttl":7}`), 0), dcs.ErrConflict)
		c, _ := a.Cluster(ctx)
		v := c.Config.Version
		require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":8}`), v))
		require.ErrorIs(t, b.SetConfig(ctx, []byte(`{"ttl":9}`), v), dcs.ErrConflict)
		c, _ = a.Cluster(ctx)
		require.JSONEq(t, `{"ttl":8}`, string(c.Config.Value))

		require.NoError(t, a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b"}, 0))
		c, _ = a.Cluster(ctx)
		require.Equal(t, "b", c.Failover.Member)
		require.NoError(t, a.DeleteFailover(ctx))
		c, _ = a.Cluster(ctx)
		require.Nil(t, c.Failover)

		require.NoError(t, a.SetFailsafe(ctx, map[string]string{"a": "http://a/patroni"}))
		c, _ = b.Cluster(ctx)
		require.Equal(t, map[string]string{"a": "http://a/patroni"}, c.Failsafe)
		require.NoError(t, a.SetFailsafe(ctx, nil))
		c, _ = b.Cluster(ctx)
		require.Nil(t, c.Failsafe)
	})

	t.Run("status and history round trip", func(t *testing.T) {
		require.NoError(t, a.SetStatus(ctx, dcs.Status{Optime: 12345}))
		h := []dcs.HistoryEntry{{Timeline: 1, LSN: 100, Reason: "no recovery target specified", Timestamp: "2026-11-21T00:00:00+00:00", NewLeader: "b"}}
		require.NoError(t, a.SetHistory(ctx, h))
		c, _ := b.Cluster(ctx)
		require.Equal(t, int64(12345), c.Status.Optime)
		require.Equal(t, h, c.History)
	})

	t.Run("garbage values are skipped, not fatal", func(t *testing.T) {
		cli := raw(t, e)
		_, err := cli.Put(ctx, "/service/c1/members/junk", "{not json")
		require.NoError(t, err)
		_, err = cli.Put(ctx, "/service/c1/history", `{"x":1}`)
		require.NoError(t, err)
		_, err = cli.Put(ctx, "/service/c1/leader", `{"name":"x"}`)
		require.NoError(t, err)
		c, err := a.Cluster(ctx)
		require.NoError(t, err)
		require.Nil(t, c.Member("junk"))
		require.Nil(t, c.Leader)
		require.ElementsMatch(t, []string{"/service/c1/members/junk", "/service/c1/history", "/service/c1/leader"}, c.Invalid)
		_, err = cli.Delete(ctx, "/service/c1/", clientv3.WithPrefix())
		require.NoError(t, err)
	})

	t.Run("member key vanishes on DeleteMember", func(t *testing.T) {
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		require.NoError(t, a.DeleteMember(ctx))
		c, _ := b.Cluster(ctx)
		require.Nil(t, c.Member("a"))
	})

	t.Run("DeleteCluster removes this cluster's keys only", func(t *testing.T) {
		other := raw(t, e)
		_, err := other.Put(ctx, "/service/c10/config", "{}") // a prefix of c1's keys must not match
		require.NoError(t, err)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":6}`), -1))
		require.NoError(t, a.DeleteCluster(ctx))
		resp, err := other.Get(ctx, "/service/c1/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		require.NoError(t, err)
		require.Zero(t, resp.Count)
		resp, err = other.Get(ctx, "/service/c10/config")
		require.NoError(t, err)
		require.Len(t, resp.Kvs, 1)
	})

	t.Run("unreachable store fails within retry_timeout", func(t *testing.T) {
		e.Stop()
		defer e.Start()
		start := time.Now()
		_, err := a.Cluster(ctx)
		require.Error(t, err)
		require.True(t, errors.Is(err, dcs.ErrUnreachable), "got %v", err)
		require.Contains(t, err.Error(), e.HostPort)
		require.Less(t, time.Since(start), 5*time.Second)
	})
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func waitChange(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no change notification")
	}
}
