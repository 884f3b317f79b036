package dcstest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
)

type suite struct {
	tg  Target
	seq atomic.Int64
}

// scope is a fresh cluster name per subtest, so that no subtest sees another's keys.
func (s *suite) scope(t *testing.T) string {
	return fmt.Sprintf("conf%d-%d", time.Now().UnixNano()%1_000_000, s.seq.Add(1))
}

// open returns a backend that is closed when the test ends (unless the test closed it first).
func (s *suite) open(t *testing.T, scope, name string) dcs.DCS {
	t.Helper()
	return s.openTTL(t, scope, name, s.tg.TTL)
}

func (s *suite) openTTL(t *testing.T, scope, name string, ttl time.Duration) dcs.DCS {
	t.Helper()
	b := s.tg.New(t, scope, name, ttl, retry)
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { _ = b.Close() }) })
	return &closeOnce{DCS: b, once: &once}
}

// closeOnce lets a test close a backend (a crash) without the cleanup closing it again.
type closeOnce struct {
	dcs.DCS
	once *sync.Once
}

func (c *closeOnce) Close() error {
	var err error
	c.once.Do(func() { err = c.DCS.Close() })
	return err
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func cluster(t *testing.T, b dcs.DCS) *dcs.Cluster {
	t.Helper()
	c, err := b.Cluster(ctxT(t))
	require.NoError(t, err)
	return c
}

// eventually polls cond every 100 ms until it holds or within passes; it returns how long it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if cond() {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *suite) initializeRace(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	bs := []dcs.DCS{s.open(t, scope, "a"), s.open(t, scope, "b"), s.open(t, scope, "c")}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := b.Initialize(ctx, "", true)
			assert.NoError(t, err)
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load(), "exactly one member wins the initialize race")
	c := cluster(t, bs[1])
	require.NotNil(t, c.Initialize)
	require.Equal(t, "", *c.Initialize, "a bootstrap in progress reads as an empty initialize key")

	ok, err := bs[0].Initialize(ctx, "7000000000000000001", false)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = bs[2].Initialize(ctx, "7000000000000000002", true)
	require.NoError(t, err)
	require.False(t, ok, "create must not overwrite an existing initialize key")
	require.Equal(t, "7000000000000000001", *cluster(t, bs[2]).Initialize)

	require.NoError(t, bs[0].CancelInitialize(ctx))
	require.Nil(t, cluster(t, bs[1]).Initialize)
	ok, err = bs[1].Initialize(ctx, "", true)
	require.NoError(t, err)
	require.True(t, ok, "after a cancelled bootstrap the race is open again")
}

func (s *suite) leaderLifecycle(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.Nil(t, cluster(t, a).Leader)

	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.False(t, ok, "a held leader key must not be taken")
	require.NoError(t, a.RenewLeader(ctx))
	require.ErrorIs(t, b.RenewLeader(ctx), dcs.ErrNotLeader)

	c := cluster(t, b)
	require.Equal(t, "a", c.LeaderName())
	require.Len(t, c.Members, 2)

	ok, err = a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok, "acquiring a key one already holds succeeds")

	require.NoError(t, b.ReleaseLeader(ctx), "releasing somebody else's key is a no-op")
	require.Equal(t, "a", cluster(t, b).LeaderName())
	require.NoError(t, a.ReleaseLeader(ctx))
	require.Nil(t, cluster(t, b).Leader)
	require.ErrorIs(t, a.RenewLeader(ctx), dcs.ErrNotLeader, "a released key cannot be renewed")

	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok, "a released key is free at once")
	require.Equal(t, "b", cluster(t, a).LeaderName())
}

func (s *suite) leaderRace(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	var bs []dcs.DCS
	for _, n := range []string{"a", "b", "c"} {
		b := s.open(t, scope, n)
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
		bs = append(bs, b)
	}
	var winners []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := b.AcquireLeader(ctx)
			assert.NoError(t, err)
			if ok {
				mu.Lock()
				winners = append(winners, string(rune('a'+i)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Len(t, winners, 1, "exactly one member wins the leader race")
	require.Equal(t, winners[0], cluster(t, bs[0]).LeaderName())
}

func (s *suite) leaderRenewedKeepsKey(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	// Renew every ttl/3, as the loop does with loop_wait well below ttl, for twice the ttl: an
	// observer must see the key all along.
	end := time.Now().Add(2 * s.tg.TTL)
	next := time.Now()
	for time.Now().Before(end) {
		if !time.Now().Before(next) {
			require.NoError(t, a.RenewLeader(ctx))
			require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
			next = time.Now().Add(s.tg.TTL / 3)
		}
		require.Equal(t, "a", cluster(t, b).LeaderName(), "a renewed leader key must never lapse")
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *suite) leaderCrashExpiry(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	sent := time.Now()
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "a", cluster(t, b).LeaderName())

	require.NoError(t, a.Close()) // a crash: no ReleaseLeader, no DeleteMember
	if s.tg.Crashed != nil {
		s.tg.Crashed(t, scope, "a")
	}
	eventually(t, s.tg.Expiry+2*time.Second, "the crashed leader's key expires", func() bool {
		return cluster(t, b).Leader == nil
	})
	gone := time.Since(sent)
	// Safety: the holder counts its lease from when it sent the request; the key must not vanish
	// for others before that lease ran out, or a new leader could overlap with the old one.
	require.GreaterOrEqual(t, gone, s.tg.TTL, "the key vanished before the holder's lease ran out")
	require.LessOrEqual(t, gone, s.tg.Expiry+time.Second, "the key outlived the expiry bound")
	t.Logf("leader key gone %.2fs after the last renewal (ttl %s)", gone.Seconds(), s.tg.TTL)

	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok, "the expired key can be taken")
}

func (s *suite) leaderStalled(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	// a's process lives on but its loop stalls: nothing renews. Its key must expire all the same
	// (a client library keeping a session alive in the background must not hold it forever).
	eventually(t, s.tg.Expiry+2*time.Second, "a stalled leader's key expires", func() bool {
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
		return cluster(t, b).Leader == nil
	})
	ok, err = b.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	// The loop wakes up: renewing must fail as not-leader, and acquiring must not take b's key.
	require.ErrorIs(t, a.RenewLeader(ctx), dcs.ErrNotLeader)
	ok, err = a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, "b", cluster(t, a).LeaderName())
	// And a comes back as a member once it touches its key again.
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.NotNil(t, cluster(t, b).Member("a"))
}

func (s *suite) ttlChange(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	for i, ttl := range []time.Duration{s.tg.TTL * 3 / 2, s.tg.TTL} {
		a.SetTTL(ttl)
		require.NoError(t, a.RenewLeader(ctx), "renewal %d after a ttl change", i)
		require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
		end := time.Now().Add(s.tg.TTL)
		for time.Now().Before(end) {
			require.Equal(t, "a", cluster(t, b).LeaderName(), "the lock lapsed around a ttl change to %s", ttl)
			require.NotNil(t, cluster(t, b).Member("a"), "the member key lapsed around a ttl change to %s", ttl)
			require.NoError(t, a.RenewLeader(ctx))
			time.Sleep(s.tg.TTL / 5)
		}
	}
}

type casKind int

const (
	configKey casKind = iota
	failoverKey
	syncKey
)

// casKey checks create-if-absent, compare-and-swap on the version read, unconditional writes and
// deletion on one of the keys written with a version.
func (s *suite) casKey(t *testing.T, k casKind) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	set := func(d dcs.DCS, i int, version int64) error { return k.set(ctx, d, i, version) }
	read := func(d dcs.DCS) (int, int64, bool) { return k.read(t, d) }
	del := func(d dcs.DCS) error { return k.del(ctx, d) }

	_, _, ok := read(b)
	require.False(t, ok)
	require.NoError(t, set(a, 1, 0), "create when absent")
	require.ErrorIs(t, set(b, 2, 0), dcs.ErrConflict, "create when present must conflict")
	n, v1, ok := read(b)
	require.True(t, ok)
	require.Equal(t, 1, n)
	require.NotZero(t, v1)

	require.NoError(t, set(b, 3, v1), "CAS on the version read")
	n, v2, _ := read(a)
	require.Equal(t, 3, n)
	require.NotEqual(t, v1, v2, "a write must change the version")
	require.ErrorIs(t, set(a, 4, v1), dcs.ErrConflict, "CAS on a stale version must conflict")
	n, _, _ = read(a)
	require.Equal(t, 3, n, "a lost CAS must not write")

	require.NoError(t, set(a, 5, -1), "unconditional write")
	n, _, _ = read(b)
	require.Equal(t, 5, n)

	if k != configKey {
		require.NoError(t, del(a))
		_, _, ok = read(b)
		require.False(t, ok, "deleted")
		require.NoError(t, del(a), "deleting an absent key is not an error")
		require.NoError(t, set(b, 6, 0), "create after delete")
		n, _, _ = read(a)
		require.Equal(t, 6, n)
	}
}

// set writes value i to the key of kind k through d, on version (0: create, -1: unconditional).
// With read and del, it lets casKey run one sequence of steps on every key written with a version.
func (k casKind) set(ctx context.Context, d dcs.DCS, i int, version int64) error {
	switch k {
	case configKey:
		return d.SetConfig(ctx, fmt.Appendf(nil, `{"ttl":%d}`, 30+i), version)
	case failoverKey:
		return d.SetFailover(ctx, dcs.Failover{Leader: "a", Member: fmt.Sprintf("m%d", i)}, version)
	default:
		return d.SetSync(ctx, dcs.Sync{Leader: "a", SyncStandby: []string{fmt.Sprintf("m%d", i)}, Quorum: 1}, version)
	}
}

// read returns the value set wrote to the key of kind k, as d sees it, with its version; ok is
// false when the key is absent. It checks that the rest of the value came back as written.
func (k casKind) read(t *testing.T, d dcs.DCS) (int, int64, bool) {
	c := cluster(t, d)
	var v string
	var ver int64
	switch k {
	case configKey:
		if c.Config == nil {
			return -1, 0, false
		}
		v, ver = strings.Trim(strings.TrimPrefix(string(c.Config.Value), `{"ttl":`), "}"), c.Config.Version
		var n int
		_, err := fmt.Sscan(v, &n)
		require.NoError(t, err, "config value %q", c.Config.Value)
		return n - 30, ver, true
	case failoverKey:
		if c.Failover == nil {
			return -1, 0, false
		}
		require.Equal(t, "a", c.Failover.Leader)
		v, ver = c.Failover.Member, c.Failover.Version
	default:
		if c.Sync == nil {
			return -1, 0, false
		}
		require.Equal(t, "a", c.Sync.Leader)
		require.Equal(t, 1, c.Sync.Quorum)
		require.Len(t, c.Sync.SyncStandby, 1)
		v, ver = c.Sync.SyncStandby[0], c.Sync.Version
	}
	var n int
	_, err := fmt.Sscanf(v, "m%d", &n)
	require.NoError(t, err, "value %q", v)
	return n, ver, true
}

// del deletes the key of kind k with d; the config key is never deleted (casKey skips it).
func (k casKind) del(ctx context.Context, d dcs.DCS) error {
	switch k {
	case configKey:
		return nil
	case failoverKey:
		return d.DeleteFailover(ctx)
	default:
		return d.DeleteSync(ctx)
	}
}

func (s *suite) concurrentCAS(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b, c := s.open(t, scope, "a"), s.open(t, scope, "b"), s.open(t, scope, "c")
	require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":30}`), 0))
	ver := cluster(t, a).Config.Version
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for i, d := range []dcs.DCS{a, b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := d.SetConfig(ctx, fmt.Appendf(nil, `{"ttl":%d}`, 40+i), ver)
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, dcs.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("concurrent CAS: unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	require.Equal(t, int32(1), wins.Load(), "exactly one CAS on the same version wins")
	require.Equal(t, int32(2), conflicts.Load())
}

func (s *suite) members(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	x, r := int64(67108960), int64(67108000)
	cap := true
	want := dcs.MemberData{
		ConnURL: "postgres://127.0.0.1:5432/postgres", APIURL: "http://127.0.0.1:8008/patroni",
		State: "running", Role: "replica", Version: "4.0.0", XLogLocation: &x, ReceiveLSN: &x, ReplayLSN: &r,
		ReplicationState: "streaming", Timeline: 3, Tags: map[string]any{"nofailover": true, "clonefrom": false},
		PendingRestart: true, PendingRestartReason: map[string]dcs.ParamChange{"max_connections": {OldValue: "100", NewValue: "200"}},
		CheckpointAfterPromote: &cap,
	}
	require.NoError(t, a.TouchMember(ctx, want))
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "starting", Role: "uninitialized"}))
	c := cluster(t, b)
	require.Len(t, c.Members, 2)
	require.Equal(t, "a", c.Members[0].Name, "members sorted by name")
	require.Equal(t, want, c.Member("a").Data, "a member key round-trips every field")

	want.State, want.Role = "stopped", "primary"
	require.NoError(t, a.TouchMember(ctx, want))
	require.NoError(t, a.TouchMember(ctx, want), "touching with the same value again")
	require.Equal(t, "stopped", cluster(t, b).Member("a").Data.State)

	require.NoError(t, a.DeleteMember(ctx))
	c = cluster(t, b)
	require.Nil(t, c.Member("a"), "a deleted member is gone at once")
	require.NotNil(t, c.Member("b"))
	require.NoError(t, a.TouchMember(ctx, want), "a member comes back after DeleteMember")
	require.NotNil(t, cluster(t, b).Member("a"))
}

func (s *suite) memberCrash(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	require.NoError(t, a.Close())
	if s.tg.Crashed != nil {
		s.tg.Crashed(t, scope, "a")
	}
	took := eventually(t, s.tg.Expiry+2*time.Second, "the crashed member's key vanishes", func() bool {
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
		return cluster(t, b).Member("a") == nil
	})
	t.Logf("member key gone %.2fs after the crash", took.Seconds())
	require.NotNil(t, cluster(t, b).Member("b"), "a live member keeps its key")
}

func (s *suite) statusHistoryFailsafe(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	st := dcs.Status{Optime: 67108960, Slots: map[string]int64{"b": 67108000}, RetainSlots: []string{"a", "b"}}
	require.NoError(t, a.SetStatus(ctx, st))
	require.Equal(t, st, cluster(t, b).Status)
	st.Optime = 67109000
	require.NoError(t, a.SetStatus(ctx, st))
	require.Equal(t, int64(67109000), cluster(t, b).Status.Optime)

	h := []dcs.HistoryEntry{
		{Timeline: 1, LSN: 25165984, Reason: "no recovery target specified", Timestamp: "2026-11-21T00:00:00+00:00", NewLeader: "a"},
		{Timeline: 2, LSN: 33554592, Reason: "no recovery target specified", Timestamp: "2026-11-21T00:01:00.123456+00:00", NewLeader: "b"},
	}
	require.NoError(t, a.SetHistory(ctx, h))
	require.Equal(t, h, cluster(t, b).History)

	fs := map[string]string{"a": "http://127.0.0.1:8008/patroni", "b": "http://127.0.0.1:8009/patroni"}
	require.NoError(t, a.SetFailsafe(ctx, fs))
	require.Equal(t, fs, cluster(t, b).Failsafe)
	require.NoError(t, a.SetFailsafe(ctx, nil))
	require.Nil(t, cluster(t, b).Failsafe)

	when := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	require.NoError(t, a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b", ScheduledAt: &when}, -1))
	f := cluster(t, b).Failover
	require.NotNil(t, f)
	require.True(t, when.Equal(*f.ScheduledAt))
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

func (s *suite) watch(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
	cluster(t, b)
	// The watch may take a moment to be established after the backend opens.
	time.Sleep(time.Second)
	wake := func(what string, change func()) {
		// Wait for a quiet moment first, so that a wake-up from an earlier change (or a backend
		// that signals on a timer) cannot pass for this one.
		// a's lease must outlive the quiet wait: renew it first (a renewal may wake the watcher
		// too, which the wait absorbs).
		// Both members keep their keys alive as their loops would (a backend may end a session
		// whose loop went silent for the ttl).
		require.NoError(t, b.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica"}))
		if cl := cluster(t, b); cl.LeaderName() == "a" {
			require.NoError(t, a.RenewLeader(ctx))
		}
		quiet := false
		for deadline := time.Now().Add(5 * time.Second); !quiet && time.Now().Before(deadline); {
			drain(b.Changes())
			select {
			case <-b.Changes():
			case <-time.After(700 * time.Millisecond):
				quiet = true
			}
		}
		require.True(t, quiet, "%s: the watcher never went quiet for 700ms", what)
		start := time.Now()
		change()
		select {
		case <-b.Changes():
			t.Logf("%s: woke after %s", what, time.Since(start).Round(time.Millisecond))
		case <-time.After(3 * time.Second):
			t.Fatalf("%s did not wake the watcher within 3s", what)
		}
	}
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	wake("leader acquired", func() {
		ok, err := a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	})
	wake("config written", func() { require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":30}`), -1)) })
	wake("failover written", func() {
		require.NoError(t, a.SetFailover(ctx, dcs.Failover{Leader: "a", Member: "b"}, -1))
	})
	wake("failover deleted", func() { require.NoError(t, a.DeleteFailover(ctx)) })
	wake("leader released", func() { require.NoError(t, a.ReleaseLeader(ctx)) })
}

func (s *suite) deleteCluster(t *testing.T) {
	ctx, scope := ctxT(t), s.scope(t)
	a := s.open(t, scope, "a")
	other := s.open(t, scope+"x", "a")
	for _, d := range []dcs.DCS{a, other} {
		_, err := d.Initialize(ctx, "7000000000000000001", true)
		require.NoError(t, err)
		require.NoError(t, d.SetConfig(ctx, []byte(`{"ttl":30}`), -1))
		require.NoError(t, d.SetHistory(ctx, []dcs.HistoryEntry{{Timeline: 1, LSN: 1, Reason: "x"}}))
		require.NoError(t, d.SetFailover(ctx, dcs.Failover{Member: "a"}, -1))
	}
	require.NoError(t, a.DeleteCluster(ctx))
	c := cluster(t, a)
	require.Nil(t, c.Initialize)
	require.Nil(t, c.Config)
	require.Nil(t, c.Failover)
	require.Empty(t, c.History)
	require.NotNil(t, cluster(t, other).Config, "another cluster's keys (even a prefix-sharing scope) survive")
}

// bounded runs call and fails the test when it takes longer than retry_timeout plus slack.
func bounded(t *testing.T, what string, call func() error) error {
	t.Helper()
	start := time.Now()
	err := call()
	if d := time.Since(start); d > retry+slack {
		t.Errorf("%s took %s, more than retry_timeout %s (+%s)", what, d.Round(time.Millisecond), retry, slack)
	}
	return err
}

// calls is every read and write a member makes in a loop, for the fault subtests.
func calls(ctx context.Context, d dcs.DCS) map[string]func() error {
	return map[string]func() error{
		"Cluster":       func() error { _, err := d.Cluster(ctx); return err },
		"RenewLeader":   func() error { return d.RenewLeader(ctx) },
		"AcquireLeader": func() error { _, err := d.AcquireLeader(ctx); return err },
		"TouchMember": func() error {
			return d.TouchMember(ctx, dcs.MemberData{State: "running", Role: "replica", Timeline: 9})
		},
		"SetConfig":      func() error { return d.SetConfig(ctx, []byte(`{"ttl":31}`), -1) },
		"SetStatus":      func() error { return d.SetStatus(ctx, dcs.Status{Optime: 1}) },
		"SetFailover":    func() error { return d.SetFailover(ctx, dcs.Failover{Member: "b"}, -1) },
		"DeleteFailover": func() error { return d.DeleteFailover(ctx) },
	}
}

func (s *suite) restart(t *testing.T) {
	if s.tg.Restart == nil {
		t.Fatal("dcstest: Target.Restart is required")
	}
	ctx, scope := ctxT(t), s.scope(t)
	a, b := s.open(t, scope, "a"), s.open(t, scope, "b")
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	require.NoError(t, a.SetConfig(ctx, []byte(`{"ttl":30}`), 0))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	s.tg.Restart(t)

	// Every call comes back within the bound and the data survived; the leader is still a, or (if
	// the server forgot a's lease) nobody — never somebody else.
	eventually(t, 30*time.Second, "the backends work again after the restart", func() bool {
		var c *dcs.Cluster
		err := bounded(t, "Cluster after restart", func() error { var err error; c, err = b.Cluster(ctx); return err })
		return err == nil && c.Config != nil
	})
	err = bounded(t, "RenewLeader after restart", func() error { return a.RenewLeader(ctx) })
	if err != nil {
		require.ErrorIs(t, err, dcs.ErrNotLeader, "after a restart a renewal either works or says not-leader")
		ok, err = a.AcquireLeader(ctx)
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.Equal(t, "a", cluster(t, b).LeaderName())
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	require.NotNil(t, cluster(t, b).Member("a"))
	require.JSONEq(t, `{"ttl":30}`, string(cluster(t, b).Config.Value), "the config survived the restart")
}

func (s *suite) outage(t *testing.T) {
	if s.tg.Outage == nil {
		t.Fatal("dcstest: Target.Outage is required")
	}
	ctx, scope := ctxT(t), s.scope(t)
	before := ourGoroutines()
	a := s.tg.New(t, scope, "a", s.tg.TTL, retry)
	b := s.tg.New(t, scope, "b", s.tg.TTL, retry)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = a.Close()
			_ = b.Close()
		}
	})
	require.NoError(t, a.TouchMember(ctx, dcs.MemberData{State: "running", Role: "primary"}))
	ok, err := a.AcquireLeader(ctx)
	require.NoError(t, err)
	require.True(t, ok)

	restore := s.tg.Outage(t)
	restored := false
	defer func() {
		if !restored {
			restore()
		}
	}()
	// Every call of both members fails within the bound, as unreachable; none hangs, and none
	// claims the leader key is gone (that would demote a primary for a store's hiccup).
	// The calls run at once, as a store's users make them concurrently, and to keep this short.
	var wg sync.WaitGroup
	for _, d := range []dcs.DCS{a, b} {
		for name, call := range calls(ctx, d) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := bounded(t, name+" during the outage", call)
				if err == nil {
					t.Errorf("%s during the outage succeeded", name)
					return
				}
				if d == b && name == "RenewLeader" && errors.Is(err, dcs.ErrNotLeader) {
					return // b never led: it may know that without asking the store
				}
				assert.ErrorIs(t, err, dcs.ErrUnreachable, "%s during the outage: %v", name, err)
			}()
		}
	}
	wg.Wait()
	require.False(t, t.Failed())
	restore()
	restored = true

	eventually(t, 30*time.Second, "the backends work again after the outage", func() bool {
		return bounded(t, "Cluster after the outage", func() error { _, err := b.Cluster(ctx); return err }) == nil
	})
	err = bounded(t, "RenewLeader after the outage", func() error { return a.RenewLeader(ctx) })
	if err != nil {
		require.ErrorIs(t, err, dcs.ErrNotLeader)
	}
	c := cluster(t, b)
	require.Contains(t, []string{"", "a"}, c.LeaderName(), "nobody but a can lead after the outage")

	closed = true
	require.NoError(t, a.Close())
	require.NoError(t, b.Close())
	// Close ends every goroutine the backends started, including those that were blocked in
	// calls to the unreachable server.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if left = leaked(before, ourGoroutines()); len(left) == 0 {
			break
		}
	}
	if len(left) > 0 {
		t.Fatalf("goroutines left after Close:\n%s", strings.Join(left, "\n\n"))
	}
}
