package ha

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/postgres"
)

func tagged(m dcs.Member, tags map[string]any) dcs.Member {
	m.Data.Tags = tags
	return m
}

func slotCluster(members ...dcs.Member) *dcs.Cluster {
	c := cluster("a", append([]dcs.Member{member("a", "primary")}, members...)...)
	c.Status.Slots = map[string]int64{"b": 500, "c": 400, "perm": 300}
	return c
}

func slotDyn(js string) config.Dynamic {
	d, err := config.ParseDynamic([]byte(js))
	if err != nil {
		panic(err)
	}
	return d
}

func wantedNames(v SlotView) []string { return slices.Sorted(maps.Keys(WantedSlots(v))) }

// TestRuleWantedSlotsOnTheLeader: with member_slots_ttl (the default) the leader keeps a slot
// for every other member that streams (nostream: none), for members whose key is gone but are
// retained, and the permanent slots; ignore_slots takes slots out of tusker's hands.
func TestRuleWantedSlotsOnTheLeader(t *testing.T) {
	c := slotCluster(member("b", "replica"), tagged(member("c", "replica"), map[string]any{"replicatefrom": "b"}),
		tagged(member("d", "replica"), map[string]any{"nostream": true}))
	d := slotDyn(`{"slots": {"perm": null, "cdc": {"database": "app", "plugin": "pgoutput"}, "a": null}}`)
	v := SlotView{Me: "a", Leader: true, Cluster: c, Dyn: d, Retained: []string{"gone", "a", "Bad Name'"}}
	w := WantedSlots(v)
	assert.Equal(t, []string{"b", "c", "cdc", "gone", "perm"}, slices.Sorted(maps.Keys(w)),
		"members (not nostream d), retained gone (never my own name), permanent slots (a permanent slot named as me is not mine to keep)")
	assert.Equal(t, Slot{Name: "b"}, w["b"], "a member streaming from me: nothing to advance")
	assert.Equal(t, int64(400), w["c"].Advance, "c cascades from b: its slot here is moved by the published position")
	assert.Equal(t, Slot{Name: "cdc", Logical: true, Database: "app", Plugin: "pgoutput", Permanent: true}, w["cdc"])
	assert.Equal(t, Slot{Name: "perm", Permanent: true}, w["perm"])
	c.Status.Slots["cdc"] = 250
	assert.Equal(t, int64(250), WantedSlots(v)["cdc"].Published, "a former primary had the logical slot at 250")

	v.Dyn = slotDyn(`{"member_slots_ttl": 0, "slots": {"perm": null}}`)
	assert.Equal(t, []string{"b", "gone", "perm"}, wantedNames(v), "without member_slots_ttl: only members streaming from me")
	v.Cluster = slotCluster(member("b", "replica"), tagged(member("c", "replica"), map[string]any{"replicatefrom": "zz"}))
	assert.Equal(t, []string{"b", "c", "gone", "perm"}, wantedNames(v), "replicatefrom a member that is gone: it streams from the leader")

	v.Dyn = slotDyn(`{"slots": {"perm": null}, "ignore_slots": [{"name": "perm"}, {"name": "b"}]}`)
	assert.Equal(t, []string{"c", "gone"}, wantedNames(v), "ignored slots are not kept (nor dropped: SlotOps)")

	v.Dyn = slotDyn(`{"postgresql": {"use_slots": false}, "slots": {"perm": null}}`)
	assert.Empty(t, WantedSlots(v), "use_slots: false: no slots at all")
}

// TestRuleWantedSlotsOnReplicas: a replica that may be promoted keeps copies of the member and
// permanent physical slots, advanced to the leader's published positions, so that a new
// primary already holds them; logical slots stay on the primary; a nofailover replica keeps only
// the slots of the members cascading from it.
func TestRuleWantedSlotsOnReplicas(t *testing.T) {
	c := slotCluster(member("b", "replica"), tagged(member("c", "replica"), map[string]any{"replicatefrom": "b"}))
	leaderWAL := int64(800)
	c.Members[0].Data.XLogLocation = &leaderWAL
	d := slotDyn(`{"slots": {"perm": null, "cdc": {"database": "app", "plugin": "pgoutput"}}}`)
	v := SlotView{Me: "b", Cluster: c, Dyn: d, Retained: []string{"gone", "b"}}
	w := WantedSlots(v)
	assert.Equal(t, int64(800), w["a"].Advance, "the leader's slot, which nobody publishes, follows the leader's own position")
	assert.Equal(t, []string{"a", "c", "gone", "perm"}, slices.Sorted(maps.Keys(w)))
	assert.Equal(t, int64(400), w["c"].Advance)
	assert.Equal(t, int64(300), w["perm"].Advance)

	v.NoFailover = true
	assert.Equal(t, []string{"c"}, wantedNames(v), "nofailover: only my cascading replica's slot")
	v.NoFailover = false
	v.Dyn = slotDyn(`{"member_slots_ttl": "0", "slots": {"perm": null}}`)
	assert.Equal(t, []string{"c", "gone", "perm"}, wantedNames(v), "without member_slots_ttl: my cascading replicas, retained, permanent")

	v = SlotView{Me: "c", Cluster: c, Dyn: slotDyn(`{"slots": {"p1": {"cluster_type": "primary"}, "p2": {"cluster_type": "standby"}, "cdc": {"database": "app", "plugin": "pgoutput"}}}`)}
	assert.Equal(t, []string{"a", "b", "p1"}, wantedNames(v), "a primary cluster: cluster_type standby slots are not kept")
	v.Standby, v.Leader = true, true
	assert.Equal(t, []string{"a", "b", "p2"}, wantedNames(v), "a standby cluster: the standby slots, no logical ones")
}

// TestRuleSlotOps: tusker creates what is missing, advances copies that are behind, and drops
// only its own slots that are no longer wanted and not in use. A user's slot, an ignored slot,
// an active slot and a slot of another kind are left alone.
func TestRuleSlotOps(t *testing.T) {
	want := map[string]Slot{
		"b":    {Name: "b"},
		"c":    {Name: "c", Advance: 9 * walSegment},
		"same": {Name: "same", Advance: 5*walSegment + 900},
		"cdc":  {Name: "cdc", Logical: true, Database: "app", Plugin: "pgoutput", Permanent: true},
		"perm": {Name: "perm", Advance: 100, Permanent: true},
		"kind": {Name: "kind"},
	}
	have := []postgres.SlotInfo{
		{Name: "c", RestartLSN: 5 * walSegment},
		{Name: "same", RestartLSN: 5*walSegment + 100},
		{Name: "perm", RestartLSN: 200},
		{Name: "kind", Logical: true, Database: "app", Plugin: "pgoutput"},
		{Name: "old_member", RestartLSN: 10},
		{Name: "busy_member", RestartLSN: 10, Active: true},
		{Name: "users_own", RestartLSN: 10},
		{Name: "ignored_member", RestartLSN: 10},
	}
	owned := func(n string) bool { return n == "old_member" || n == "busy_member" || n == "ignored_member" }
	want["lost"] = Slot{Name: "lost", Logical: true, Database: "app", Plugin: "pgoutput", Permanent: true, Published: 700}
	ops, problems := SlotOps(want, have, owned, slotDyn(`{"ignore_slots": [{"name": "ignored_member"}]}`))
	require.Equal(t, []postgres.SlotOp{
		{Kind: postgres.CreateSlot, Name: "b"},
		{Kind: postgres.AdvanceSlot, Name: "c", LSN: 9 * walSegment},
		{Kind: postgres.CreateSlot, Name: "cdc", Logical: true, Database: "app", Plugin: "pgoutput"},
		{Kind: postgres.DropSlot, Name: "old_member"},
	}, ops, "perm is ahead of its published position: never moved back; same would move within its WAL segment: no use")
	require.Equal(t, []string{"kind", "lost"}, slices.Sorted(maps.Keys(problems)))
	ops, _ = SlotOps(want, have, owned, slotDyn(`{"pause": true}`))
	require.NotContains(t, ops, postgres.SlotOp{Kind: postgres.DropSlot, Name: "old_member"}, "maintenance mode: nothing is dropped")
	require.Contains(t, problems["lost"], "would skip the changes", "a logical slot a former primary had is never created afresh")
}

// TestRuleRetainSlots: the leader lists the member slots it has for members whose key is there,
// keeps a name for member_slots_ttl after the key goes, then lets it expire.
func TestRuleRetainSlots(t *testing.T) {
	d := slotDyn(`{"member_slots_ttl": "10min", "slots": {"perm": null}}`)
	c := slotCluster(member("b", "replica"), tagged(member("d", "replica"), map[string]any{"nostream": true}))
	have := []postgres.SlotInfo{{Name: "b"}, {Name: "c"}, {Name: "d"}, {Name: "perm"}, {Name: "users"}}
	seen := map[string]time.Time{}
	list, expired := RetainSlots(seen, c, "a", have, d, t0)
	assert.Equal(t, []string{"b"}, list, "c has no member key, d does not stream, perm is permanent, users is no member's")
	assert.Empty(t, expired)

	c = slotCluster() // b's key expired (a reboot)
	list, _ = RetainSlots(seen, c, "a", have, d, t0.Add(9*time.Minute))
	assert.Equal(t, []string{"b"}, list, "retained for member_slots_ttl")
	list, expired = RetainSlots(seen, c, "a", have, d, t0.Add(10*time.Minute))
	assert.Empty(t, list)
	assert.Equal(t, []string{"b"}, expired)

	c = &dcs.Cluster{Members: []dcs.Member{member("b", "replica")}}
	list, _ = RetainSlots(map[string]time.Time{}, c, "a", []postgres.SlotInfo{{Name: "a"}, {Name: "b"}}, d, t0)
	assert.Equal(t, []string{"a", "b"}, list, "my own key missing: my name is listed for a while (Patroni)")
}

func TestRulePublishedSlots(t *testing.T) {
	want := map[string]Slot{"b": {Name: "b"}, "perm": {Name: "perm", Permanent: true},
		"cdc": {Name: "cdc", Logical: true, Permanent: true}}
	have := []postgres.SlotInfo{{Name: "b", RestartLSN: 10}, {Name: "perm", RestartLSN: 20},
		{Name: "cdc", Logical: true, RestartLSN: 5, ConfirmedFlushLSN: 30}, {Name: "users", RestartLSN: 40}}
	assert.Equal(t, map[string]int64{"b": 10, "perm": 20, "cdc": 30}, PublishedSlots(want, have, slotDyn(`{}`)),
		"logical: confirmed_flush_lsn; a user's slot is not published")
	assert.Equal(t, map[string]int64{"perm": 20, "cdc": 30}, PublishedSlots(want, have, slotDyn(`{"member_slots_ttl": 0}`)),
		"without member_slots_ttl only permanent slots")
	assert.Nil(t, PublishedSlots(nil, have, slotDyn(`{}`)))
	want["lost"] = Slot{Name: "lost", Logical: true, Permanent: true, Published: 70}
	assert.Equal(t, int64(70), PublishedSlots(want, have, slotDyn(`{}`))["lost"], "a missing logical slot keeps its mark")
}

func TestRuleLogicalSlotsNeedWALLevelLogical(t *testing.T) {
	c := &config.Config{}
	assert.Equal(t, "logical", PostgresConfig(c, slotDyn(`{"slots": {"cdc": {"database": "app", "plugin": "pgoutput"}}}`), nil).Parameters["wal_level"])
	assert.NotContains(t, PostgresConfig(c, slotDyn(`{"slots": {"phys": null}}`), nil).Parameters, "wal_level", "physical slots: the default")
	assert.Equal(t, "replica", PostgresConfig(c, slotDyn(`{"postgresql": {"parameters": {"wal_level": "replica"}}, "slots": {"cdc": {"database": "app", "plugin": "pgoutput"}}}`), nil).Parameters["wal_level"],
		"set by the user: kept")
}
