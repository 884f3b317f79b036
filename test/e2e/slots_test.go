package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/test/harness"
)

// TestSlotsSurviveFailover: permanent slots and member slots on real PostgreSQL and etcd.
//   - Every member keeps the permanent physical slot and the other members' slots (copies on
//     the replicas); the primary also has the permanent logical slot; an ignored permanent slot
//     is never created; the status key carries optime, slots and retain_slots.
//   - A replica stopped for longer than its member key lives, but less than member_slots_ttl,
//     keeps its slot on the primary, which holds the WAL it missed: it streams on without a new
//     base backup although the primary keeps no other WAL (wal_keep_size 0).
//   - A user's own slots, and an ignored one, are untouched on every member through a SIGKILL
//     failover; the new primary has the permanent physical slot and the members' slots at once;
//     the logical slot, which only the old primary had, is not created afresh there.
func TestSlotsSurviveFailover(t *testing.T) {
	e := newClusterWith(t, nil, harness.ClusterOptions{Scope: "e2e", Nodes: 3,
		Dynamic: "slots:\n  perm: null\n  keep_out: null\n  cdc:\n    database: postgres\n    plugin: test_decoding\n" +
			"ignore_slots:\n- name: keep_out\n- name: ignored\nmember_slots_ttl: 5min\n",
		DCSParams: map[string]string{"wal_keep_size": "0", "max_wal_size": "64MB", "min_wal_size": "32MB"}})
	ctx := context.Background()
	require.NoError(t, e.c.Start())
	p := e.waitHealthy(90 * time.Second)
	seed(t, e.c, p)
	var replicas []*harness.Node
	for _, n := range e.c.Nodes {
		if n != p {
			replicas = append(replicas, n)
		}
	}
	for _, n := range e.c.Nodes {
		want := []string{"perm"}
		for _, o := range e.c.Nodes {
			if o != n {
				want = append(want, o.Name)
			}
		}
		if n == p {
			want = append(want, "cdc")
		}
		waitSlots(t, n, want...)
		require.NoError(t, n.Exec(ctx, "SELECT pg_create_physical_replication_slot('users_own', true)"))
		require.NoError(t, n.Exec(ctx, "SELECT pg_create_physical_replication_slot('ignored', true)"))
	}
	st := statusKey(t, e)
	require.Positive(t, st.Optime)
	for _, name := range []string{"perm", "cdc", replicas[0].Name, replicas[1].Name} {
		require.Contains(t, st.Slots, name, "status slots %v", st.Slots)
	}
	require.NotContains(t, st.Slots, "users_own", "a user's slot is not published")
	require.Equal(t, []string{replicas[0].Name, replicas[1].Name}, st.RetainSlots)

	// A replica away for longer than its member key lives.
	r := replicas[1]
	r.KillNode()
	require.NoError(t, harness.WaitFor(ctx, 60*time.Second, 200*time.Millisecond, func() error {
		if memberKeyExists(t, e, r.Name) {
			return fmt.Errorf("the member key of %s is still there", r.Name)
		}
		return nil
	}))
	waitSlots(t, p, "perm", "cdc", replicas[0].Name, r.Name, "users_own", "ignored")
	require.Contains(t, statusKey(t, e).RetainSlots, r.Name, "retained although its member key is gone")
	for i := 2; i < 6; i++ {
		insert(t, p, i)
		require.NoError(t, p.Exec(ctx, "SELECT pg_switch_wal()"))
	}
	require.NoError(t, p.Exec(ctx, "CHECKPOINT"))
	before := len(r.Log())
	require.NoError(t, r.Start())
	waitRow(t, r, 5)
	require.NotContains(t, r.Log()[before:], "cloning data directory", "%s streamed on from its slot", r.Name)

	// SIGKILL failover.
	p.KillNode()
	np := waitNewPrimary(t, e.c, p, 60*time.Second)
	var other *harness.Node
	for _, n := range replicas {
		if n != np {
			other = n
		}
	}
	waitSlots(t, np, "perm", p.Name, other.Name, "users_own", "ignored")
	insert(t, np, 6)
	waitRow(t, other, 6)
	requireLogLine(t, np.Log(), "slot=cdc", "would skip the changes")
	require.NoError(t, p.Start())
	waitRowWithin(t, p, 6, 60*time.Second)
	for _, n := range []*harness.Node{np, other} {
		have := slotNames(t, n)
		require.Subset(t, have, []string{"users_own", "ignored"}, "%s: a user's slots are never dropped", n.Name)
		require.NotContains(t, have, "keep_out", "%s: an ignored permanent slot is never created", n.Name)
	}
}

// waitSlots waits until n has (at least) the replication slots names.
func waitSlots(t *testing.T, n *harness.Node, names ...string) {
	t.Helper()
	require.NoError(t, harness.WaitFor(context.Background(), 30*time.Second, 200*time.Millisecond, func() error {
		have := slotNames(t, n)
		for _, name := range names {
			if !slices.Contains(have, name) {
				return fmt.Errorf("%s has slots %v, not %s", n.Name, have, name)
			}
		}
		return nil
	}), "slots %v on %s", names, n.Name)
}

func slotNames(t *testing.T, n *harness.Node) []string {
	t.Helper()
	s, err := n.QueryString(context.Background(), "SELECT COALESCE(string_agg(slot_name, ',' ORDER BY slot_name), '') FROM pg_replication_slots")
	require.NoError(t, err)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func etcdGet(t *testing.T, e *env, key string) []byte {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd.Endpoint}, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, key)
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0].Value
}

func statusKey(t *testing.T, e *env) dcs.Status {
	t.Helper()
	var st dcs.Status
	require.NoError(t, json.Unmarshal(etcdGet(t, e, "/service/e2e/status"), &st))
	return st
}

func memberKeyExists(t *testing.T, e *env, name string) bool {
	return etcdGet(t, e, "/service/e2e/members/"+name) != nil
}

// TestCascadingReplica: a replica tagged replicatefrom streams from the member it names
// (pg_stat_replication of that member lists it, the leader's does not), through a slot that
// member keeps for it; when that member dies it streams from the leader; when the member runs
// again it cascades from it again.
func TestCascadingReplica(t *testing.T) {
	e := newCluster(t, 3, "")
	c := e.c
	ctx := context.Background()
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	require.NoError(t, c.WriteConfig(n3, c.Opts.ExtraLocal+"tags:\n  replicatefrom: "+n2.Name+"\n"))
	require.NoError(t, n1.Start())
	waitRole(t, n1, "primary", 90*time.Second)
	require.NoError(t, n2.Start())
	waitRole(t, n2, "replica", 90*time.Second)
	require.NoError(t, n3.Start())
	p := e.waitHealthy(90 * time.Second)
	require.Equal(t, n1.Name, p.Name)
	seed(t, c, p)

	waitStreamingFrom(t, n3, n2)
	waitReplicaOf(t, n2, n3.Name)
	s, err := n1.QueryString(ctx, "SELECT COALESCE(string_agg(application_name, ',' ORDER BY application_name), '') FROM pg_stat_replication")
	require.NoError(t, err)
	require.Equal(t, n2.Name, s, "the leader streams to n2 only")
	active, err := n2.QueryString(ctx, "SELECT active::text FROM pg_replication_slots WHERE slot_name = $1", n3.Name)
	require.NoError(t, err)
	require.Equal(t, "true", active, "n2 keeps the slot n3 streams through")

	// The upstream dies: n3 streams from the leader.
	n2.KillNode()
	waitStreamingFrom(t, n3, n1)
	waitReplicaOf(t, n1, n3.Name)
	insert(t, n1, 2)
	waitRow(t, n3, 2)

	// It runs again: n3 cascades from it again.
	require.NoError(t, n2.Start())
	waitRole(t, n2, "replica", 60*time.Second)
	waitStreamingFrom(t, n3, n2)
	insert(t, n1, 3)
	waitRow(t, n3, 3)
}

// waitReplicaOf waits until up's pg_stat_replication lists name as streaming.
func waitReplicaOf(t *testing.T, up *harness.Node, name string) {
	t.Helper()
	require.NoError(t, harness.WaitFor(context.Background(), 60*time.Second, 200*time.Millisecond, func() error {
		s, err := up.QueryString(context.Background(), "SELECT count(*)::text FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'", name)
		if err != nil {
			return err
		}
		if s != "1" {
			return fmt.Errorf("%s does not stream to %s", up.Name, name)
		}
		return nil
	}), "%s streaming to %s", up.Name, name)
}
