package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tusker-ha/tusker/test/harness"
)

// startWriter writes into the primary that GET /primary names (harness.AckWriter); p is the
// primary now, where the table is made.
func startWriter(t *testing.T, c *harness.Cluster, p *harness.Node) *harness.AckWriter {
	t.Helper()
	require.NoError(t, p.Exec(context.Background(), harness.AckTable))
	w, err := harness.StartAckWriter(context.Background(), func(ctx context.Context) (*pgx.Conn, string, error) {
		p, err := c.Primary(ctx)
		if err != nil {
			return nil, "", err
		}
		conn, err := pgx.Connect(ctx, p.DSN())
		return conn, p.Name, err
	})
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	return w
}

// missingOn lists the acknowledged ids node n does not have.
func missingOn(t *testing.T, w *harness.AckWriter, n *harness.Node) []int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, n.DSN())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	missing, err := w.MissingOn(ctx, conn)
	require.NoError(t, err)
	return missing
}

// syncKey reads the sync key from etcd.
func syncKey(t *testing.T, e *env) map[string]any {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.etcd.Endpoint}, DialTimeout: 2 * time.Second})
	require.NoError(t, err)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/service/e2e/sync")
	require.NoError(t, err)
	if len(resp.Kvs) == 0 {
		return nil
	}
	var m map[string]any
	require.NoError(t, json.Unmarshal(resp.Kvs[0].Value, &m))
	return m
}

// syncStandbys is the sync key's sync_standby list.
func syncStandbys(t *testing.T, e *env) []string {
	k := syncKey(t, e)
	s, _ := k["sync_standby"].(string)
	if s == "" {
		return nil
	}
	l := strings.Split(s, ",")
	sort.Strings(l)
	return l
}

// enableSync turns a synchronous mode on at runtime and waits until the sync key lists want
// standbys.
func enableSync(t *testing.T, e *env, p *harness.Node, body map[string]any, want int) {
	t.Helper()
	code, msg := call(t, p, http.MethodPatch, "/config", body)
	require.Equal(t, 200, code, msg)
	waitFor(t, 30*time.Second, fmt.Sprintf("%d standbys in the sync key", want), func() error {
		if got := syncStandbys(t, e); len(got) != want {
			return fmt.Errorf("sync key lists %v (%v)", got, syncKey(t, e))
		}
		return nil
	})
}

func nodeByName(c *harness.Cluster, name string) *harness.Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func gucOf(t *testing.T, n *harness.Node) string {
	t.Helper()
	s, err := n.QueryString(context.Background(), "SHOW synchronous_standby_names")
	require.NoError(t, err)
	return s
}

// TestSynchronousFailoverNoLostWrites: for synchronous_mode on, on+strict and quorum on three
// nodes, a writer commits continuously; the primary's node is SIGKILLed; every commit the old
// primary acknowledged is on the new primary, and on the old one after it rejoins. The REST
// health checks and tuskerctl list show the synchronous roles on the way.
func TestSynchronousFailoverNoLostWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		body   map[string]any
		guc    string
		voters int
	}{
		{"on", map[string]any{"synchronous_mode": "on"}, `FIRST 1 (`, 1},
		{"strict", map[string]any{"synchronous_mode": true, "synchronous_mode_strict": true}, `FIRST 1 (`, 1},
		{"quorum", map[string]any{"synchronous_mode": "quorum"}, `ANY 1 (`, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSyncCluster(t)
			p := e.waitHealthy(90 * time.Second)
			enableSync(t, e, p, tc.body, tc.voters)
			require.Contains(t, gucOf(t, p), tc.guc)
			voters := syncStandbys(t, e)
			checkSyncRoles(t, e, p, tc.name == "quorum", voters)

			w := startWriter(t, e.c, p)
			waitFor(t, 20*time.Second, "writes acknowledged", func() error {
				if w.Count(p.Name) < 50 {
					return fmt.Errorf("%d acknowledged", w.Count(p.Name))
				}
				return nil
			})
			killed := time.Now()
			p.KillNode()
			np := waitNewPrimary(t, e.c, p, 60*time.Second)
			require.Contains(t, voters, np.Name, "only a member of the sync key may be promoted")
			waitFor(t, 60*time.Second, "writes on the new primary", func() error {
				if w.Count(np.Name) < 30 {
					return fmt.Errorf("%d acknowledged by %s", w.Count(np.Name), np.Name)
				}
				return nil
			})
			w.Stop()
			t.Logf("mode %s: %d writes acknowledged by %s, %d by %s; longest gap after the kill %s",
				tc.name, w.Count(p.Name), p.Name, w.Count(np.Name), np.Name, w.MaxGapAfter(killed).Round(time.Millisecond))
			require.Empty(t, missingOn(t, w, np), "acknowledged writes lost on the new primary %s", np.Name)

			// The old primary comes back as a replica of the new one with every write.
			require.NoError(t, p.Start())
			np2 := e.waitHealthy(90 * time.Second)
			require.Equal(t, np, np2)
			waitFor(t, 30*time.Second, "the rejoined member has every acknowledged write", func() error {
				if m := missingOn(t, w, p); len(m) > 0 {
					return fmt.Errorf("%d missing on %s", len(m), p.Name)
				}
				return nil
			})
			waitFor(t, 30*time.Second, "the sync key names the new primary", func() error {
				if k := syncKey(t, e); k["leader"] != np.Name || len(syncStandbys(t, e)) != tc.voters {
					return fmt.Errorf("sync key %v", k)
				}
				return nil
			})
		})
	}
}

func newSyncCluster(t *testing.T) *env {
	t.Helper()
	e := newCluster(t, 3, "")
	require.NoError(t, e.c.Start())
	return e
}

// checkSyncRoles: REST health checks, /patroni and tuskerctl list agree with the sync key (the
// replicas publish what they read in their next cycle, so this waits a little for them).
func checkSyncRoles(t *testing.T, e *env, p *harness.Node, quorum bool, voters []string) {
	t.Helper()
	ctx := context.Background()
	syncPath, otherPath, role, roOK, flag := "/sync", "/quorum", "Sync Standby", "/read-only-sync", "sync_standby"
	if quorum {
		syncPath, otherPath, role, roOK, flag = "/quorum", "/sync", "Quorum Standby", "/read-only-quorum", "quorum_standby"
	}
	ctl := newCtl(t, e)
	waitFor(t, 15*time.Second, "the synchronous roles everywhere", func() error {
		var bad []string
		want := func(n *harness.Node, path string, code int) {
			if got := n.Check(ctx, path); got != code {
				bad = append(bad, fmt.Sprintf("%s %s = %d, want %d", n.Name, path, got, code))
			}
		}
		want(p, syncPath, 503)
		want(p, roOK, 200)
		want(p, "/async", 503)
		rows := ctl.members()
		if rows[p.Name]["Role"] != "Leader" {
			bad = append(bad, fmt.Sprintf("tuskerctl list: %s is %v", p.Name, rows[p.Name]["Role"]))
		}
		for _, n := range others(e.c, p) {
			listed := false
			for _, v := range voters {
				listed = listed || v == n.Name
			}
			m, _, err := n.Patroni(ctx)
			if err != nil {
				return err
			}
			wantRole := "Replica"
			if listed {
				want(n, syncPath, 200)
				want(n, roOK, 200)
				want(n, "/async", 503)
				wantRole = role
				if m[flag] != true {
					bad = append(bad, fmt.Sprintf("/patroni of %s: %s = %v", n.Name, flag, m[flag]))
				}
			} else {
				want(n, syncPath, 503)
				want(n, "/async", 200)
				if _, ok := m[flag]; ok {
					bad = append(bad, fmt.Sprintf("/patroni of %s has %s", n.Name, flag))
				}
			}
			want(n, otherPath, 503)
			if rows[n.Name]["Role"] != wantRole {
				bad = append(bad, fmt.Sprintf("tuskerctl list: %s is %v, want %s", n.Name, rows[n.Name]["Role"], wantRole))
			}
		}
		if len(bad) > 0 {
			return errors.New(strings.Join(bad, "; "))
		}
		return nil
	})
}

// TestSyncStandbyLoss: in mode on (not strict) the synchronous standby's node dies: writes go on
// within about a loop, with the other standby as the new synchronous one.
func TestSyncStandbyLoss(t *testing.T) {
	e := newSyncCluster(t)
	p := e.waitHealthy(90 * time.Second)
	enableSync(t, e, p, map[string]any{"synchronous_mode": "on"}, 1)
	sb := nodeByName(e.c, syncStandbys(t, e)[0])
	other := others(e.c, p, sb)[0]
	w := startWriter(t, e.c, p)
	waitFor(t, 20*time.Second, "writes acknowledged", func() error {
		if w.Count("") < 50 {
			return errors.New("not yet")
		}
		return nil
	})
	killed := time.Now()
	before := w.Count("")
	sb.KillNode()
	waitFor(t, 20*time.Second, "writes resume after the sync standby died", func() error {
		if w.Count("") < before+50 {
			return fmt.Errorf("%d writes since the kill", w.Count("")-before)
		}
		return nil
	})
	waitFor(t, 20*time.Second, other.Name+" becomes the sync standby", func() error {
		if got := syncStandbys(t, e); len(got) != 1 || got[0] != other.Name {
			return fmt.Errorf("sync key lists %v", got)
		}
		return nil
	})
	w.Stop()
	t.Logf("longest pause in acknowledged writes after the sync standby died: %s", w.MaxGapAfter(killed).Round(time.Millisecond))
	assert.Equal(t, p.Name, func() string { np, _ := e.c.Primary(context.Background()); return np.Name }(), "no failover")
	require.Empty(t, missingOn(t, w, other))
}

// TestStrictSyncHoldsCommits: with synchronous_mode_strict, a commit waits while no standby is
// there and returns once one is back and has caught up; a standby that missed commits is never
// promoted, even when it is the only member left.
func TestStrictSyncHoldsCommits(t *testing.T) {
	e := newSyncCluster(t)
	a := e.waitHealthy(90 * time.Second)
	enableSync(t, e, a, map[string]any{"synchronous_mode": "on", "synchronous_mode_strict": true}, 1)
	b := nodeByName(e.c, syncStandbys(t, e)[0])
	c := others(e.c, a, b)[0]
	w := startWriter(t, e.c, a)
	waitFor(t, 20*time.Second, "writes acknowledged", func() error {
		if w.Count("") < 20 {
			return errors.New("not yet")
		}
		return nil
	})
	w.Stop()

	// Both standbys go: a commit now waits.
	c.KillNode()
	b.KillNode()
	conn, err := pgx.Connect(context.Background(), a.DSN())
	require.NoError(t, err)
	defer conn.Close(context.Background())
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := conn.Exec(ctx, "INSERT INTO acked VALUES (-1)")
		res <- err
	}()
	select {
	case err := <-res:
		t.Fatalf("a commit returned with no standby in strict mode: %v", err)
	case <-time.After(4 * time.Second):
	}

	// c comes back: it catches up, becomes the synchronous standby, and the commit returns.
	require.NoError(t, c.Start())
	select {
	case err := <-res:
		require.NoError(t, err, "the waiting commit")
	case <-time.After(45 * time.Second):
		t.Fatal("the commit still waits after a standby came back")
	}
	require.Equal(t, []string{c.Name}, syncStandbys(t, e))

	// b missed that commit. The primary and c go: b alone must not be promoted.
	a.KillNode()
	c.KillNode()
	require.NoError(t, b.Start())
	waitFor(t, 30*time.Second, b.Name+" running as a replica", func() error {
		m, _, err := b.Patroni(context.Background())
		if err != nil {
			return err
		}
		if m["state"] != "running" {
			return fmt.Errorf("state %v", m["state"])
		}
		return nil
	})
	time.Sleep(10 * time.Second) // more than ttl (6 s): the lock is long gone
	m, _, err := b.Patroni(context.Background())
	require.NoError(t, err)
	require.Equal(t, "replica", m["role"], "%s missed a commit and must not be promoted", b.Name)
	assert.Contains(t, b.Log(), "not the last primary or a standby of the sync key")

	// c, which has every commit, comes back and is promoted; b follows it.
	require.NoError(t, c.Start())
	np := waitNewPrimary(t, e.c, a, 60*time.Second)
	require.Equal(t, c, np)
	v, err := c.QueryString(context.Background(), "SELECT count(*)::text FROM acked WHERE id = -1")
	require.NoError(t, err)
	require.Equal(t, "1", v)
	require.Empty(t, missingOn(t, w, c))
	require.NoError(t, a.Start())
	e.waitHealthy(90 * time.Second)
}

// TestSyncSwitchover: in mode on a switchover to the asynchronous standby is refused as Patroni
// refuses it, one to the synchronous standby works; in quorum mode any standby may be named.
func TestSyncSwitchover(t *testing.T) {
	e := newSyncCluster(t)
	p := e.waitHealthy(90 * time.Second)
	enableSync(t, e, p, map[string]any{"synchronous_mode": "on"}, 1)
	sb := nodeByName(e.c, syncStandbys(t, e)[0])
	async := others(e.c, p, sb)[0]

	code, msg := call(t, p, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": async.Name})
	require.Equal(t, 412, code, msg)
	require.Equal(t, "candidate name does not match with sync_standby", msg)

	code, msg = call(t, p, http.MethodPost, "/switchover", map[string]any{"leader": p.Name, "candidate": sb.Name})
	require.Equal(t, 200, code, msg)
	require.Equal(t, fmt.Sprintf("Successfully switched over to %q", sb.Name), msg)
	require.Equal(t, sb, e.waitHealthy(60*time.Second))
	waitFor(t, 30*time.Second, "the sync key follows the new primary", func() error {
		if k := syncKey(t, e); k["leader"] != sb.Name || len(syncStandbys(t, e)) != 1 {
			return fmt.Errorf("sync key %v", k)
		}
		return nil
	})

	// Quorum: a switchover to any standby, here the one not listed first.
	code, msg = call(t, sb, http.MethodPatch, "/config", map[string]any{"synchronous_mode": "quorum"})
	require.Equal(t, 200, code, msg)
	waitFor(t, 30*time.Second, "two voters", func() error {
		if got := syncStandbys(t, e); len(got) != 2 {
			return fmt.Errorf("sync key lists %v", got)
		}
		return nil
	})
	code, msg = call(t, sb, http.MethodPost, "/switchover", map[string]any{"leader": sb.Name, "candidate": async.Name})
	require.Equal(t, 200, code, msg)
	require.Equal(t, async, e.waitHealthy(60*time.Second))

	// Off again: the key goes, and synchronous_standby_names is back to the configured (empty) value.
	code, msg = call(t, async, http.MethodPatch, "/config", map[string]any{"synchronous_mode": "off"})
	require.Equal(t, 200, code, msg)
	waitFor(t, 30*time.Second, "sync key deleted and GUC restored", func() error {
		if k := syncKey(t, e); k != nil {
			return fmt.Errorf("sync key %v", k)
		}
		if g := gucOf(t, async); g != "" {
			return fmt.Errorf("synchronous_standby_names %q", g)
		}
		return nil
	})
}
