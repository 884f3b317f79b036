package ha

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

// syncModel is a primary and its standbys reduced to what synchronous replication promises:
// commits are numbered, a standby's flush position is the last commit it has (WAL is linear), a
// commit is acknowledged when the GUC in effect is satisfied, and the leader applies
// NextSyncStep's steps. After every event, every acknowledged commit must be missing from at most
// Q members of the sync key's voters.
type syncModel struct {
	t       *testing.T
	r       *rand.Rand
	mode    string
	strict  bool
	want    int
	names   []string
	alive   map[string]bool
	flush   map[string]int64
	tags    map[string]map[string]any
	lsn     int64 // last commit written on the primary
	acked   int64 // highest acknowledged commit
	pending []int64
	guc     postgres.SyncNames
	managed bool
	confirm int64
	key     *dcs.Sync
	log     []string
}

func newSyncModel(t *testing.T, seed uint64, mode string) *syncModel {
	m := &syncModel{t: t, r: rand.New(rand.NewPCG(seed, 7)), mode: mode, want: 1,
		names: []string{"b", "c", "d"}, alive: map[string]bool{}, flush: map[string]int64{}, tags: map[string]map[string]any{}}
	for _, n := range m.names {
		m.alive[n] = true
	}
	return m
}

func (m *syncModel) input() SyncInput {
	in := SyncInput{Mode: m.mode, Strict: m.strict, Want: m.want, Me: "a", Key: m.key, GUC: m.guc,
		Managed: m.managed, Confirm: m.confirm}
	in.Members = append(in.Members, dcs.Member{Name: "a", Data: dcs.MemberData{Role: "primary", State: "running"}})
	for _, n := range m.names {
		in.Members = append(in.Members, dcs.Member{Name: n, Data: dcs.MemberData{Role: "replica", State: "running", Tags: m.tags[n]}})
		if m.alive[n] {
			in.Replicas = append(in.Replicas, ReplicaConn{Name: n, Streaming: true, Flush: m.flush[n]})
		}
	}
	return in
}

// ackable: the GUC in effect lets commit x return: FIRST n waits for the n first connected
// standbys of the list, ANY n for any n of it.
func (m *syncModel) ackable(x int64) bool {
	g := m.guc
	if g.Empty() {
		return true
	}
	have := 0
	if g.Any {
		for _, n := range g.Names {
			if m.alive[n] && m.flush[n] >= x {
				have++
			}
		}
		return have >= g.Num
	}
	seen := 0
	for _, n := range g.Names {
		if !m.alive[n] {
			continue
		}
		seen++
		if m.flush[n] < x {
			return false
		}
		if seen == g.Num {
			return true
		}
	}
	return false
}

func (m *syncModel) release() {
	var still []int64
	for _, x := range m.pending {
		if m.ackable(x) {
			m.acked = max(m.acked, x)
		} else {
			still = append(still, x)
		}
	}
	m.pending = still
}

func (m *syncModel) check(event string) {
	m.log = append(m.log, event)
	if len(m.log) > 12 {
		m.log = m.log[1:]
	}
	if m.key == nil || len(m.key.SyncStandby) == 0 {
		return
	}
	lack := 0
	for _, v := range m.key.SyncStandby {
		if m.flush[v] < m.acked {
			lack++
		}
	}
	if lack > m.key.Quorum {
		m.t.Fatalf("promise broken after %q: commit %d acknowledged, %d of voters %v lack it, quorum %d\nGUC %q, flush %v\nlast events:\n%s",
			event, m.acked, lack, m.key.SyncStandby, m.key.Quorum, m.guc.String(), m.flush, strings.Join(m.log, "\n"))
	}
}

// step applies the leader's next step; it reports false when there was none.
func (m *syncModel) step() bool {
	st, why := NextSyncStep(m.input())
	switch st.Kind {
	case 0:
		return false
	case WriteSyncKey:
		k := st.Key
		m.key = &k
	case DeleteSyncKey:
		m.key = nil
	case SetSyncGUC:
		m.guc, m.managed, m.confirm = st.GUC, true, m.lsn
	case RestoreSyncGUC:
		m.guc, m.managed, m.confirm = postgres.SyncNames{}, false, 0
	}
	m.release()
	m.check("step: " + why)
	return true
}

func (m *syncModel) event() {
	n := m.names[m.r.IntN(len(m.names))]
	switch k := m.r.IntN(20); {
	case k < 6:
		m.lsn++
		m.pending = append(m.pending, m.lsn)
		m.release()
		m.check(fmt.Sprintf("commit %d written", m.lsn))
	case k < 11:
		if m.alive[n] && m.flush[n] < m.lsn {
			m.flush[n] += 1 + m.r.Int64N(m.lsn-m.flush[n])
			m.release()
			m.check(fmt.Sprintf("%s flushed up to %d", n, m.flush[n]))
		}
	case k < 13:
		m.alive[n] = !m.alive[n]
		m.release()
		m.check(fmt.Sprintf("%s alive=%v", n, m.alive[n]))
	case k == 13:
		m.want = 1 + m.r.IntN(3)
		m.check(fmt.Sprintf("synchronous_node_count %d", m.want))
	case k == 14:
		m.strict = !m.strict
		m.check(fmt.Sprintf("strict %v", m.strict))
	case k == 15:
		if m.r.IntN(4) == 0 {
			m.tags[n] = map[string]any{"nosync": true}
		} else {
			m.tags[n] = nil
		}
		m.check(fmt.Sprintf("%s tags %v", n, m.tags[n]))
	default:
		for range 1 + m.r.IntN(3) {
			if !m.step() {
				break
			}
		}
	}
}

// TestSyncPromiseModel drives the synchronous replication steps through random standby deaths,
// returns, lag, commits and configuration changes, and checks the sync key's promise after each
// event: no acknowledged commit is missing from more than Q of its voters.
func TestSyncPromiseModel(t *testing.T) {
	for _, mode := range []string{"on", "quorum"} {
		for seed := range uint64(300) {
			m := newSyncModel(t, seed, mode)
			for range 400 {
				m.event()
				if m.r.IntN(50) == 0 {
					// The mode changes too, including off and back.
					m.mode = []string{"on", "quorum", "off"}[m.r.IntN(3)]
					m.check("mode " + m.mode)
				}
			}
			// Then everything heals: the steps settle within a few steps, with every standby a
			// voter, and no commit stays blocked.
			m.mode, m.strict, m.want = mode, false, 1
			for _, n := range m.names {
				m.alive[n], m.flush[n], m.tags[n] = true, m.lsn, nil
			}
			m.release()
			m.check("healed")
			steps := 0
			for m.step() {
				steps++
				require.Less(t, steps, 10, "seed %d mode %s: no steady state", seed, mode)
			}
			require.NotNil(t, m.key, "seed %d", seed)
			if mode == "on" {
				assert.Len(t, m.key.SyncStandby, 1, "seed %d", seed)
				assert.Equal(t, 0, m.key.Quorum, "seed %d", seed)
			} else {
				assert.ElementsMatch(t, m.names, m.key.SyncStandby, "seed %d", seed)
				assert.Equal(t, 2, m.key.Quorum, "seed %d", seed)
			}
			assert.Empty(t, m.pending, "seed %d", seed)
		}
	}
}

func syncIn(mode string, key *dcs.Sync, guc string, replicas ...ReplicaConn) SyncInput {
	g, err := postgres.ParseSyncNames(guc)
	if err != nil {
		panic(err)
	}
	in := SyncInput{Mode: mode, Want: 1, Me: "a", Key: key, GUC: g, Managed: true, Confirm: 100, Replicas: replicas}
	in.Members = append(in.Members, dcs.Member{Name: "a", Data: dcs.MemberData{Role: "primary", State: "running"}})
	for _, r := range replicas {
		in.Members = append(in.Members, dcs.Member{Name: r.Name, Data: dcs.MemberData{Role: "replica", State: "running"}})
	}
	return in
}

func rc(name string, flush int64) ReplicaConn {
	return ReplicaConn{Name: name, Streaming: true, Flush: flush}
}

// TestRuleSyncOrder: the GUC before the key when a standby is added, the key before the GUC when
// one is removed, in both modes.
func TestRuleSyncOrder(t *testing.T) {
	// Mode on, b streaming: the GUC first, then b in the key once it has everything.
	in := syncIn("on", &dcs.Sync{Leader: "a"}, "", rc("b", 100))
	st, _ := NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.Equal(t, `FIRST 1 ("b")`, st.GUC.String())
	in.GUC = st.GUC
	in.Replicas[0].Flush = 90 // not yet at the position where the GUC took effect
	st, _ = NextSyncStep(in)
	assert.Equal(t, Kind(0), st.Kind, "b is not in the key before it has every commit")
	in.Replicas[0].Flush = 100
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.Equal(t, []string{"b"}, st.Key.SyncStandby)

	// b goes away, c streams: b leaves the key first, then the GUC moves to c.
	in = syncIn("on", &dcs.Sync{Leader: "a", SyncStandby: []string{"b"}}, `FIRST 1 ("b")`, rc("c", 100))
	in.Members = append(in.Members, dcs.Member{Name: "b", Data: dcs.MemberData{Role: "replica", State: "running"}})
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.Empty(t, st.Key.SyncStandby)
	in.Key = &st.Key
	st, _ = NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.Equal(t, `FIRST 1 ("c")`, st.GUC.String())

	// Strict and nobody left: the GUC and the key stay (commits wait for b).
	in = syncIn("on", &dcs.Sync{Leader: "a", SyncStandby: []string{"b"}}, `FIRST 1 ("b")`)
	in.Strict = true
	st, _ = NextSyncStep(in)
	assert.Equal(t, Kind(0), st.Kind, "strict keeps waiting for b and keeps b promotable")
	// Not strict: the key first, then no synchronous standby at all.
	in.Strict = false
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.Empty(t, st.Key.SyncStandby)
	in.Key = &st.Key
	st, _ = NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.True(t, st.GUC.Empty())

	// Quorum: a third standby joins the voters before the GUC lists it, and nobody leaves the key.
	in = syncIn("quorum", &dcs.Sync{Leader: "a", SyncStandby: []string{"b", "c"}, Quorum: 1}, `ANY 1 ("b","c")`,
		rc("b", 100), rc("c", 100), rc("d", 100))
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.ElementsMatch(t, []string{"b", "c", "d"}, st.Key.SyncStandby)
	assert.Equal(t, 2, st.Key.Quorum)
	in.Key = &st.Key
	st, _ = NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.Equal(t, `ANY 1 ("b","c","d")`, st.GUC.String())

	// Quorum: a voter dies: the GUC drops it first (the key's quorum still covers it), then the key.
	in = syncIn("quorum", &dcs.Sync{Leader: "a", SyncStandby: []string{"b", "c"}, Quorum: 1}, `ANY 1 ("b","c")`, rc("c", 100))
	st, _ = NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.Equal(t, `ANY 1 ("c")`, st.GUC.String())
	in.GUC = st.GUC
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.Equal(t, []string{"c"}, st.Key.SyncStandby)
	assert.Equal(t, 0, st.Key.Quorum)

	// A key of the previous primary is replaced by one naming only this one.
	in = syncIn("on", &dcs.Sync{Leader: "old", SyncStandby: []string{"a"}}, "", rc("b", 100))
	st, _ = NextSyncStep(in)
	require.Equal(t, WriteSyncKey, st.Kind)
	assert.Equal(t, dcs.Sync{Leader: "a"}, st.Key)

	// Off: the key goes first, then the configured GUC comes back.
	in = syncIn("off", &dcs.Sync{Leader: "a", SyncStandby: []string{"b"}}, `FIRST 1 ("b")`, rc("b", 100))
	st, _ = NextSyncStep(in)
	assert.Equal(t, DeleteSyncKey, st.Kind)
	in.Key = nil
	st, _ = NextSyncStep(in)
	assert.Equal(t, RestoreSyncGUC, st.Kind)
}

// TestRuleSyncCandidates: nosync and sync_priority 0 are never synchronous, higher sync_priority
// first, maximum_lag_on_syncnode keeps laggards out, synchronous_node_count in mode on.
func TestRuleSyncCandidates(t *testing.T) {
	in := syncIn("on", &dcs.Sync{Leader: "a"}, "", rc("b", 100), rc("c", 100), rc("d", 40), rc("e", 100))
	in.Members[1].Data.Tags = map[string]any{"nosync": true}
	in.Members[2].Data.Tags = map[string]any{"sync_priority": float64(1)}
	in.Members[4].Data.Tags = map[string]any{"sync_priority": float64(5)}
	in.Want = 2
	in.MaxLag = 50
	st, _ := NextSyncStep(in)
	require.Equal(t, SetSyncGUC, st.Kind)
	assert.Equal(t, `FIRST 2 ("e","c")`, st.GUC.String(), "b is nosync, d lags 60 > 50, e has the higher priority")
	in.Members[2].Data.Tags = map[string]any{"sync_priority": float64(0)}
	st, _ = NextSyncStep(in)
	assert.Equal(t, `FIRST 1 ("e")`, st.GUC.String())
	in.Mode = "quorum"
	in.MaxLag = 0
	st, _ = NextSyncStep(in)
	assert.Equal(t, `ANY 2 ("e","d")`, st.GUC.String())
	// Strict with no candidate at all: the placeholder holds commits.
	in = syncIn("quorum", &dcs.Sync{Leader: "a"}, "")
	in.Strict = true
	st, _ = NextSyncStep(in)
	assert.Equal(t, `ANY 1 ("`+StrictPlaceholder+`")`, st.GUC.String())
}

// TestRuleSyncPromotion: only the sync key's leader and voters race, and a voter needs Quorum
// other voters, none ahead of it (R+W>N).
func TestRuleSyncPromotion(t *testing.T) {
	view := func(me string, key *dcs.Sync, peers ...Peer) View {
		v := view(me, cluster("", member("a", "replica"), member("b", "replica"), member("c", "replica"), member("d", "replica")),
			runningReplica(100))
		v.Settings.SyncMode = "quorum"
		v.Cluster.Sync = key
		v.Peers, v.PeersProbed = peers, true
		return v
	}
	key := &dcs.Sync{Leader: "a", SyncStandby: []string{"b", "c"}, Quorum: 1}
	p := Decide(view("d", key, Peer{Name: "b", Reachable: true, WALEnd: 90}))
	assert.False(t, p.Has(Promote), p.Reason)
	assert.Contains(t, p.Reason, "not the last primary or a standby of the sync key")

	p = Decide(view("b", key, Peer{Name: "d", Reachable: true, WALEnd: 50}))
	assert.False(t, p.Has(Promote), "no other voter answered")
	assert.Contains(t, p.Reason, "quorum not reached")

	p = Decide(view("b", key, Peer{Name: "c", Reachable: true, WALEnd: 100}, Peer{Name: "d", Reachable: true, WALEnd: 200}))
	assert.True(t, p.Has(Promote), "c voted, d is ahead but not a voter: %s", p.Reason)
	assert.True(t, p.Has(WriteSyncKey) && p.Has(SetSyncGUC), "the sync key names the new primary before it promotes")

	p = Decide(view("b", key, Peer{Name: "c", Reachable: true, WALEnd: 101}))
	assert.False(t, p.Has(Promote), p.Reason)

	// Mode on: Quorum 0, the sync standby alone is enough.
	v := view("b", &dcs.Sync{Leader: "a", SyncStandby: []string{"b"}})
	v.Settings.SyncMode = "on"
	p = Decide(v)
	assert.True(t, p.Has(Promote), p.Reason)
	i := slices.IndexFunc(p.Actions, func(a Action) bool { return a.Kind == SetSyncGUC })
	assert.True(t, p.Actions[i].GUC.Empty(), "not strict: commits do not wait until standbys are picked")
	v.Settings.SyncStrict = true
	p = Decide(v)
	i = slices.IndexFunc(p.Actions, func(a Action) bool { return a.Kind == SetSyncGUC })
	assert.Equal(t, `FIRST 1 ("`+StrictPlaceholder+`")`, p.Actions[i].GUC.String(), "strict: commits wait")

	// The former primary of the key may come back as the leader without votes.
	v = view("a", key)
	p = Decide(v)
	assert.True(t, p.Has(Promote), p.Reason)
}

// TestRuleSyncReplacesUnusableKey: a sync key that did not parse (decoded as naming nobody) is
// replaced by the leader, on its version, and restricts no promotion meanwhile.
func TestRuleSyncReplacesUnusableKey(t *testing.T) {
	v := leaderView("a", runningPrimary(100))
	v.Local.Ready = true
	v.Settings.SyncMode = "on"
	v.Cluster.Sync = &dcs.Sync{Version: 12}
	p := Decide(v)
	i := slices.IndexFunc(p.Actions, func(a Action) bool { return a.Kind == WriteSyncKey })
	require.GreaterOrEqual(t, i, 0, p.Reason)
	assert.Equal(t, int64(12), p.Actions[i].SyncVersion)
	assert.Equal(t, dcs.Sync{Leader: "a"}, p.Actions[i].SyncKey)
	assert.True(t, syncVoter(v, "b"))
}
