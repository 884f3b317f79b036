package zookeeper

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/dcs/dcstest"
	"github.com/tusker-ha/tusker/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.CheckZooKeeper) }

func TestConformance(t *testing.T) {
	z := harness.StartZooKeeper(t)
	dcstest.Run(t, dcstest.Target{
		New: func(t testing.TB, scope, name string, ttl, retry time.Duration) dcs.DCS {
			b, err := New(Options{Hosts: []string{z.Addr}, Scope: scope, Name: name, TTL: ttl, RetryTimeout: retry})
			require.NoError(t, err)
			return b
		},
		TTL: 2 * time.Second,
		Restart: func(t testing.TB) {
			z.Stop()
			require.NoError(t, z.Start())
		},
		Outage: func(t testing.TB) func() {
			z.Stop()
			return func() { require.NoError(t, z.Start()) }
		},
	})
}

type env struct {
	z *harness.ZooKeeper
}

func (e env) open(t *testing.T, scope, name string, ttl time.Duration, mod ...func(*Options)) *Backend {
	t.Helper()
	o := Options{Hosts: []string{e.z.Addr}, Scope: scope, Name: name, TTL: ttl, RetryTimeout: 2 * time.Second}
	for _, m := range mod {
		m(&o)
	}
	b, err := New(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// raw is a plain client, for looking at znodes behind the backend's back.
func (e env) raw(t *testing.T, auth ...AuthData) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect([]string{e.z.Addr}, 10*time.Second, zk.WithLogInfo(false))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	for _, a := range auth {
		require.NoError(t, c.AddAuth(a.Scheme, []byte(a.Credential)))
	}
	return c
}

func sessionOf(b *Backend) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess == nil {
		return 0
	}
	return b.sess.conn.SessionID()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestZooKeeperBackend(t *testing.T) {
	e := env{z: harness.StartZooKeeper(t)}

	t.Run("session timeout is the ttl: a crashed holder's znodes vanish ttl after it went silent", func(t *testing.T) {
		ctx := ctxT(t)
		a := e.open(t, "expiry", "a", 3*time.Second)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		sessions, err := e.z.Sessions()
		require.NoError(t, err)
		require.Equal(t, 3*time.Second, sessions[sessionOf(a)], "the session timeout the server granted")
		a.mu.Lock()
		require.Equal(t, 3*time.Second, a.sess.grantedTimeout(), "read from the connect response")
		a.mu.Unlock()

		raw := e.raw(t)
		require.NoError(t, a.Close()) // a crash: the session is not closed
		silent := time.Now()
		ok, st, err := raw.Exists("/service/expiry/leader")
		require.NoError(t, err)
		require.True(t, ok, "Close revokes nothing: the leader znode outlives the process")
		require.NotZero(t, st.EphemeralOwner)
		for {
			ok, _, err := raw.Exists("/service/expiry/leader")
			require.NoError(t, err)
			if !ok {
				break
			}
			require.Less(t, time.Since(silent), 6*time.Second, "leader znode still there")
			time.Sleep(20 * time.Millisecond)
		}
		gone := time.Since(silent)
		t.Logf("leader znode gone %.2fs after the holder went silent (ttl 3s)", gone.Seconds())
		// The last ping may precede the crash by up to ttl/3; the server expires on 500 ms ticks.
		require.GreaterOrEqual(t, gone, 2*time.Second)
		ok, _, err = raw.Exists("/service/expiry/members/a")
		require.NoError(t, err)
		require.False(t, ok, "the member znode shares the session")
	})

	t.Run("a restarted member takes its leader znode back from its earlier session", func(t *testing.T) {
		ctx := ctxT(t)
		a := e.open(t, "takeback", "a", 10*time.Second)
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, a.Close())
		a2 := e.open(t, "takeback", "a", 10*time.Second)
		b := e.open(t, "takeback", "b", 10*time.Second)
		ok, err = b.AcquireLeader(ctx)
		require.NoError(t, err)
		require.False(t, ok, "the earlier session still holds it for everybody else")
		require.ErrorIs(t, a2.RenewLeader(ctx), dcs.ErrNotLeader, "a new session does not own it")
		ok, err = a2.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, a2.RenewLeader(ctx))
		_, st, err := e.raw(t).Get("/service/takeback/leader")
		require.NoError(t, err)
		require.Equal(t, sessionOf(a2), st.EphemeralOwner)
		// DeleteMember closes the session: the leader znode goes at once, not after ttl.
		require.NoError(t, a2.DeleteMember(ctx))
		ok, _, err = e.raw(t).Exists("/service/takeback/leader")
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("ttl change while leading keeps the leader znode all along", func(t *testing.T) {
		ctx := ctxT(t)
		a := e.open(t, "ttlmove", "a", 2*time.Second)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		oldSID := sessionOf(a)

		// A reader polls the leader znode as fast as it can; a watcher checks it the moment its
		// watch fires. Neither may ever find it absent.
		reader, watcher := e.raw(t), e.raw(t)
		var reads, absent atomic.Int64
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ok, _, err := reader.Exists("/service/ttlmove/leader")
				if err == nil {
					reads.Add(1)
					if !ok {
						absent.Add(1)
					}
				}
			}
		}()
		_, _, ev, err := watcher.ExistsW("/service/ttlmove/leader")
		require.NoError(t, err)

		a.SetTTL(4 * time.Second)
		require.NoError(t, a.RenewLeader(ctx))
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		select {
		case e := <-ev:
			// ZooKeeper fires watches per operation of a transaction: the delete of the old
			// znode shows, but the create of the new one is already applied when it arrives.
			ok, st, err := watcher.Exists("/service/ttlmove/leader")
			require.NoError(t, err)
			require.True(t, ok, "after the watch fired (%s) the leader znode is there", e.Type)
			require.Equal(t, sessionOf(a), st.EphemeralOwner)
		case <-time.After(5 * time.Second):
			t.Fatal("the move did not touch the leader znode")
		}
		time.Sleep(200 * time.Millisecond)
		close(stop)
		<-done
		require.Zero(t, absent.Load(), "the leader znode was absent in %d of %d reads", absent.Load(), reads.Load())
		t.Logf("%d reads during the ttl change, none without the leader znode", reads.Load())

		newSID := sessionOf(a)
		require.NotEqual(t, oldSID, newSID)
		sessions, err := e.z.Sessions()
		require.NoError(t, err)
		require.Equal(t, 4*time.Second, sessions[newSID], "the new session times out after the new ttl")
		require.Eventually(t, func() bool {
			s, err := e.z.Sessions()
			_, old := s[oldSID]
			return err == nil && !old
		}, 5*time.Second, 50*time.Millisecond, "the old session is closed")
		for _, p := range []string{"/service/ttlmove/leader", "/service/ttlmove/members/a"} {
			_, st, err := reader.Get(p)
			require.NoError(t, err)
			require.Equal(t, newSID, st.EphemeralOwner, "%s belongs to the new session", p)
		}
	})

	t.Run("set_acls and auth_data", func(t *testing.T) {
		ctx := ctxT(t)
		cred := AuthData{Scheme: "digest", Credential: "tusker:s3cret"}
		withACL := func(o *Options) {
			o.SetACLs = map[string][]string{"digest:tusker:s3cret": {"ALL"}, "world:anyone": {"read"}}
			o.AuthData = []AuthData{cred}
		}
		a := e.open(t, "acl", "a", 10*time.Second, withACL)
		require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":10}`), 0))
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		want := []zk.ACL{
			{Perms: zk.PermAll, Scheme: "digest", ID: "tusker:" + digest("tusker", "s3cret")},
			{Perms: zk.PermRead, Scheme: "world", ID: "anyone"},
		}
		stranger, friend := e.raw(t), e.raw(t, cred)
		for _, p := range []string{"/service/acl", "/service/acl/config", "/service/acl/members",
			"/service/acl/members/a", "/service/acl/leader"} {
			// (The server shows digests only to clients with ADMIN on the znode.)
			acl, _, err := friend.GetACL(p)
			require.NoError(t, err)
			require.ElementsMatch(t, want, acl, "ACL of %s", p)
		}
		// Without the digest credential one may read (world READ) but not write.
		_, err = stranger.Set("/service/acl/config", []byte(`{}`), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth)
		require.ErrorIs(t, stranger.Delete("/service/acl/leader", -1), zk.ErrNoAuth)
		_, err = stranger.Create("/service/acl/failover", []byte(`{}`), 0, zk.WorldACL(zk.PermAll))
		require.ErrorIs(t, err, zk.ErrNoAuth)
		anon := e.open(t, "acl", "b", 10*time.Second)
		c, err := anon.Cluster(ctx)
		require.NoError(t, err)
		require.Equal(t, "a", c.LeaderName())
		err = anon.SetConfig(ctx, []byte(`{}`), -1)
		require.ErrorIs(t, err, zk.ErrNoAuth)
		require.NotErrorIs(t, err, dcs.ErrUnreachable, "a refusal is not an outage")
		// With it, a plain client and a second member write.
		_, err = friend.Set("/service/acl/config", []byte(`{"ttl":11}`), -1)
		require.NoError(t, err)
		b := e.open(t, "acl", "b2", 10*time.Second, withACL)
		require.NoError(t, b.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b2"}, 0))
		require.NoError(t, b.DeleteCluster(ctx))
	})

	t.Run("no lock on a session the server grants less than ttl", func(t *testing.T) {
		ctx := ctxT(t)
		// The test server's maxSessionTimeout is 60 s.
		a := e.open(t, "clamp", "a", 70*time.Second)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}), "a member key is harmless")
		ok, err := a.AcquireLeader(ctx)
		require.False(t, ok)
		require.ErrorContains(t, err, "maxSessionTimeout")
		require.NotErrorIs(t, err, dcs.ErrUnreachable)
		// Lowered to what the server grants, the ttl change opens a session it accepts.
		a.SetTTL(60 * time.Second)
		ok, err = a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, a.RenewLeader(ctx))
		// Raised beyond it again, renewing refuses (the primary then fences when its lease ends).
		a.SetTTL(70 * time.Second)
		err = a.RenewLeader(ctx)
		require.ErrorContains(t, err, "maxSessionTimeout")
		require.NotErrorIs(t, err, dcs.ErrUnreachable)
	})

	t.Run("garbage in znodes is skipped", func(t *testing.T) {
		ctx := ctxT(t)
		a := e.open(t, "junk", "a", 10*time.Second)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		raw := e.raw(t)
		for p, v := range map[string]string{"/service/junk/members/junk": "{not json",
			"/service/junk/history": `{"x":1}`, "/service/junk/leader": `{"name":"x"}`,
			"/service/junk/sync": "[]", "/service/junk/unknown": "whatever"} {
			_, err := raw.Create(p, []byte(v), 0, zk.WorldACL(zk.PermAll))
			require.NoError(t, err, p)
		}
		c, err := a.Cluster(ctx)
		require.NoError(t, err)
		require.Nil(t, c.Member("junk"))
		require.NotNil(t, c.Member("a"))
		require.Nil(t, c.Leader)
		require.ElementsMatch(t, []string{"/service/junk/members/junk", "/service/junk/history",
			"/service/junk/leader", "/service/junk/sync"}, c.Invalid)
		require.NoError(t, a.DeleteCluster(ctx))
		ok, _, err := raw.Exists("/service/junk")
		require.NoError(t, err)
		require.False(t, ok)
	})

	t.Run("calls fail as unreachable within retry_timeout while the server is down", func(t *testing.T) {
		ctx := ctxT(t)
		const retry = time.Second
		// ttl well above the six calls' 6 s: a gap of ttl without lease calls closes the session.
		a := e.open(t, "down", "a", 15*time.Second, func(o *Options) { o.RetryTimeout = retry })
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running"}))
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		e.z.Stop()
		calls := map[string]func() error{
			"Cluster":       func() error { _, err := a.Cluster(ctx); return err },
			"RenewLeader":   func() error { return a.RenewLeader(ctx) },
			"AcquireLeader": func() error { _, err := a.AcquireLeader(ctx); return err },
			"TouchMember":   func() error { return a.TouchMember(ctx, dcs.MemberData{State: "running"}) },
			"SetConfig":     func() error { return a.SetConfig(ctx, []byte(`{}`), -1) },
			"DeleteCluster": func() error { return a.DeleteCluster(ctx) },
		}
		for name, call := range calls {
			start := time.Now()
			err := call()
			took := time.Since(start)
			require.ErrorIs(t, err, dcs.ErrUnreachable, name)
			require.Contains(t, err.Error(), e.z.Addr, "%s names the servers", name)
			require.Less(t, took, retry+500*time.Millisecond, "%s took %s", name, took)
			t.Logf("%s: %s after %s", name, err, took.Round(time.Millisecond))
		}
		require.NoError(t, e.z.Start())
		require.Eventually(t, func() bool { return a.RenewLeader(ctx) == nil }, 10*time.Second, 100*time.Millisecond,
			"the session survives a short outage and the lock with it")
	})

	t.Run("changes in quick succession each wake the loop", func(t *testing.T) {
		// The watch that fired is set again before Changes is signalled: a change made right
		// after the wake-up must wake again.
		ctx := ctxT(t)
		a, b := e.open(t, "quick", "a", 20*time.Second), e.open(t, "quick", "b", 20*time.Second)
		_, err := b.Cluster(ctx)
		require.NoError(t, err)
		time.Sleep(300 * time.Millisecond) // the watches are set
		for i, change := range []func() error{
			func() error { return a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b"}, -1) },
			func() error { return a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "c"}, -1) },
			func() error { return a.DeleteFailover(ctx) },
			func() error { return a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b"}, -1) },
			func() error { return a.SetConfig(ctx, []byte(`{}`), -1) },
			func() error { return a.SetConfig(ctx, []byte(`{"ttl":9}`), -1) },
			func() error { _, err := a.AcquireLeader(ctx); return err },
			func() error { return a.ReleaseLeader(ctx) },
		} {
			for len(b.Changes()) > 0 {
				<-b.Changes()
			}
			require.NoError(t, change())
			select {
			case <-b.Changes():
			case <-time.After(2 * time.Second):
				t.Fatalf("change %d did not wake the loop", i)
			}
		}
	})

	t.Run("a stalled loop loses its session after ttl", func(t *testing.T) {
		ctx := ctxT(t)
		a := e.open(t, "stall", "a", 2*time.Second)
		acquired := time.Now() // the caller's lease starts before its call
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
		raw := e.raw(t)
		for {
			ok, _, err := raw.Exists("/service/stall/leader")
			require.NoError(t, err)
			if !ok {
				break
			}
			require.Less(t, time.Since(acquired), 4*time.Second)
			time.Sleep(20 * time.Millisecond)
		}
		gone := time.Since(acquired)
		t.Logf("leader znode of a stalled loop gone after %.2fs (ttl 2s)", gone.Seconds())
		require.GreaterOrEqual(t, gone, 2*time.Second, "not before the holder's own lease ran out")
		require.ErrorIs(t, a.RenewLeader(ctx), dcs.ErrNotLeader)
	})
}

func TestParseACLs(t *testing.T) {
	acl, err := ParseACLs(map[string][]string{
		"CN=patroni,O=acme":            {"read", "Write", "CREATE"},
		"CN=admin":                     {"ALL"},
		"digest:u:p":                   {"READ", "DELETE"},
		"ip:10.0.0.0/8":                {"admin"},
		"digest:v:" + digest("v", "w"): {"read"},
	})
	require.NoError(t, err)
	require.Equal(t, []zk.ACL{
		{Perms: zk.PermAll, Scheme: "x509", ID: "CN=admin"},
		{Perms: zk.PermRead | zk.PermWrite | zk.PermCreate, Scheme: "x509", ID: "CN=patroni,O=acme"},
		{Perms: zk.PermRead | zk.PermDelete, Scheme: "digest", ID: "u:" + digest("u", "p")},
		{Perms: zk.PermRead, Scheme: "digest", ID: "v:" + digest("v", "w")},
		{Perms: zk.PermAdmin, Scheme: "ip", ID: "10.0.0.0/8"},
	}, acl)
	require.Equal(t, zk.DigestACL(zk.PermAll, "u", "p")[0].ID, "u:"+digest("u", "p"))

	for _, bad := range []map[string][]string{
		{"CN=x": {"READ", "WRTE"}}, {"CN=x": {}}, {"digest:nopassword": {"ALL"}}, {"ip:": {"ALL"}},
	} {
		_, err := ParseACLs(bad)
		require.Error(t, err, "%v", bad)
	}
}

func TestNewValidates(t *testing.T) {
	for _, o := range []Options{
		{},
		{Hosts: []string{"nohostport"}},
		{Hosts: []string{"127.0.0.1:2181"}, Name: "a/b"},
		{Hosts: []string{"127.0.0.1:2181"}, SetACLs: map[string][]string{"CN=x": {"FLY"}}},
		{Hosts: []string{"127.0.0.1:2181"}, UseSSL: true, CACert: "/nonexistent"},
	} {
		_, err := New(o)
		require.Error(t, err, "%+v", o)
	}
	// A name that does not resolve yet is not fatal: New never waits for the servers.
	b, err := New(Options{Hosts: []string{"zk.invalid:2181"}, Scope: "s", Name: "a", RetryTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	start := time.Now()
	_, err = b.Cluster(context.Background())
	require.ErrorIs(t, err, dcs.ErrUnreachable)
	require.True(t, strings.Contains(err.Error(), "zk.invalid:2181"), err.Error())
	require.Less(t, time.Since(start), time.Second)
	require.NoError(t, b.Close())
	require.False(t, errors.Is(err, dcs.ErrNotLeader))
}
