package ha

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

// Synchronous replication (synchronous_mode on or quorum) is kept in two places: the primary's
// synchronous_standby_names (the GUC: commits wait for Num of Names) and the sync key in the DCS
// (who may be promoted: the voters V and the quorum Q). The key is a promise:
//
//	every acknowledged commit is missing from at most Q members of V.
//
// So a member of V that hears from Q other members of V, none of them ahead of it, has every
// acknowledged commit: at most Q voters lack a commit, and it saw Q+1 voters, one of which has it,
// and WAL is linear. This is CloudNativePG's R + W > N with R = Q+1 voters seen, W = |V| - Q and
// N = |V|, and it is checked before every automatic promotion (canPromoteSync). In mode "on"
// every listed standby acknowledges each commit (FIRST n of exactly n names), so Q is 0 and any
// single member of V has everything.
//
// The leader keeps the promise true at every step, one step per action, each re-checked against
// what was observed (syncStep):
//   - commits made under the current GUC lack from V at most lackUnder(V, GUC) members: those of
//     V not listed, plus the listed ones a commit may skip (|listed| - Num);
//   - commits made before the current GUC took effect (at WAL position ConfirmLSN) are on every
//     standby whose flush position reached ConfirmLSN (the "confirmed" ones), so they lack from V
//     at most the unconfirmed members of V.
//
// A key is written only if its Q covers both bounds; the GUC is changed only if the key in place
// covers the new GUC too. Hence the GUC is strengthened before the key names the new members, and
// the key gives members up before the GUC stops waiting for them.

// StrictPlaceholder is the name that holds commits when synchronous_mode_strict has no standby to
// wait for (Patroni's; config refuses it as a member name).
const StrictPlaceholder = config.ReservedName

// strictHold is the synchronous_standby_names that makes every commit wait for a standby that
// cannot exist.
func strictHold(mode string) postgres.SyncNames {
	return postgres.SyncNames{Any: mode == "quorum", Num: 1, Names: []string{StrictPlaceholder}}
}

// ReplicaConn is one walsender on the primary, as pg_stat_replication shows it.
type ReplicaConn struct {
	Name      string // application_name: the member name
	Streaming bool
	Flush     int64
}

// SyncInput is what the leader's synchronous replication step looks at.
type SyncInput struct {
	Mode     string // "off", "on", "quorum"
	Strict   bool
	Want     int   // synchronous_node_count
	MaxLag   int64 // maximum_lag_on_syncnode; <= 0 off
	Me       string
	Key      *dcs.Sync
	GUC      postgres.SyncNames // in effect now
	Managed  bool               // tusker sets the GUC (rather than the user's configuration)
	Confirm  int64              // WAL position at which the current GUC was known to be in effect
	Replicas []ReplicaConn
	Members  []dcs.Member
}

// SyncStep is one change: write the key, delete it, set the GUC, or give the GUC back to the
// user's configuration.
type SyncStep struct {
	Kind Kind // WriteSyncKey, DeleteSyncKey, SetSyncGUC, RestoreSyncGUC; 0 for nothing to do
	Key  dcs.Sync
	GUC  postgres.SyncNames
}

// syncCandidate is a standby that may be synchronous.
type syncCandidate struct {
	name       string
	priority   int
	noFailover bool
	listed     bool
	flush      int64
}

// syncCandidates are the streaming standbys allowed to be synchronous (not nosync, sync_priority
// above 0, a known member running as a replica), at most maximum_lag_on_syncnode behind the most
// advanced one, best first: sync_priority, then members allowed to fail over, then those listed
// now (no needless change), then WAL position.
func syncCandidates(in SyncInput) []syncCandidate {
	var out []syncCandidate
	var most int64
	for _, r := range in.Replicas {
		if r.Streaming {
			most = max(most, r.Flush)
		}
	}
	seen := map[string]bool{}
	for _, r := range in.Replicas {
		key := strings.ToLower(r.Name)
		if !r.Streaming || strings.EqualFold(r.Name, in.Me) || seen[key] {
			continue
		}
		var m *dcs.Member
		for i := range in.Members {
			if strings.EqualFold(in.Members[i].Name, r.Name) {
				m = &in.Members[i]
			}
		}
		if m == nil || m.Data.Role == "primary" {
			continue
		}
		if patroni.NoSync(m.Data.Tags) {
			continue
		}
		prio := patroni.SyncPriority(m.Data.Tags)
		if in.MaxLag > 0 && most-r.Flush > in.MaxLag {
			continue
		}
		seen[key] = true
		out = append(out, syncCandidate{name: m.Name, priority: prio, noFailover: !MemberEligible(*m),
			listed: in.GUC.Has(m.Name), flush: r.Flush})
	}
	slices.SortStableFunc(out, func(a, b syncCandidate) int {
		switch {
		case a.priority != b.priority:
			return cmp.Compare(b.priority, a.priority)
		case a.noFailover != b.noFailover:
			if a.noFailover {
				return 1
			}
			return -1
		case a.listed != b.listed:
			if a.listed {
				return -1
			}
			return 1
		case a.flush != b.flush:
			return cmp.Compare(b.flush, a.flush)
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// wantedGUC is the GUC the leader aims for.
func wantedGUC(in SyncInput, cands []syncCandidate) postgres.SyncNames {
	names := make([]string, 0, len(cands))
	for _, c := range cands {
		names = append(names, c.name)
	}
	if in.Mode == "on" && len(names) > in.Want {
		names = names[:in.Want]
	}
	if len(names) == 0 {
		if !in.Strict {
			return postgres.SyncNames{}
		}
		if !in.GUC.Empty() {
			// Strict and nobody to wait for: keep waiting for whoever commits wait for now, so
			// that the standbys in the key keep having every commit.
			return in.GUC
		}
		return strictHold(in.Mode)
	}
	if in.Mode == "on" {
		return postgres.SyncNames{Num: len(names), Names: names}
	}
	return postgres.SyncNames{Any: true, Num: min(in.Want, len(names)), Names: names}
}

// lackUnder is how many members of v a commit made under g may be missing from: those not
// listed, plus the listed ones the commit does not wait for.
func lackUnder(v []string, g postgres.SyncNames) int {
	if g.Empty() {
		return len(v)
	}
	in := 0
	for _, m := range v {
		if g.Has(m) {
			in++
		}
	}
	return len(v) - in + min(in, max(len(g.Names)-g.Num, 0))
}

func gucEqual(a, b postgres.SyncNames) bool {
	if a.Empty() && b.Empty() {
		return true
	}
	return a.Any == b.Any && a.Num == b.Num && slices.EqualFunc(a.Names, b.Names, strings.EqualFold)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return strings.EqualFold(x, y) }) {
			return false
		}
	}
	return true
}

// confirmed: the standbys whose flush position reached the WAL position at which the current GUC
// was in effect: they have every commit made before it.
func confirmed(in SyncInput) map[string]bool {
	c := map[string]bool{}
	for _, r := range in.Replicas {
		if r.Streaming && r.Flush >= in.Confirm && in.Confirm > 0 {
			c[strings.ToLower(r.Name)] = true
		}
	}
	return c
}

// keyQuorum is the smallest Q that keeps the promise for voters v: commits made under each of
// gucs (the GUC in effect now, and the one about to be set) and commits made before the current
// GUC took effect. ok is false when no Q works (every voter might lack a commit) or, in mode on,
// when Q would have to be above 0.
//
// For the commits before ConfirmLSN, the confirmed standbys have them all; and when the key in
// place still keeps its promise, at most its Q of its own voters lack any of them. That second
// bound is what keeps a voter that died in strict mode a voter: it lacks nothing, since commits
// waited for it.
func keyQuorum(in SyncInput, v []string, conf map[string]bool, gucs ...postgres.SyncNames) (int, bool) {
	if len(v) == 0 {
		return 0, true
	}
	unconf := 0
	var fromKey, newUnconf int
	cur := in.Key
	curOK := cur != nil && strings.EqualFold(cur.Leader, in.Me) && keyStillSafe(in, *cur)
	for _, m := range v {
		c := conf[strings.ToLower(m)]
		if !c {
			unconf++
		}
		switch {
		case curOK && cur.Has(m):
			fromKey++
		case !c:
			newUnconf++
		}
	}
	q := unconf
	if curOK {
		q = min(q, min(cur.Quorum, fromKey)+newUnconf)
	}
	for _, g := range gucs {
		q = max(q, lackUnder(v, g))
	}
	if q >= len(v) || (in.Mode == "on" && q > 0) {
		return 0, false
	}
	return q, true
}

func intersect(a []string, keep func(string) bool) []string {
	var out []string
	for _, x := range a {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// bestKey is the first of the candidate voter sets that keeps the promise (the empty set always
// does: only the leader may then be promoted).
func bestKey(in SyncInput, conf map[string]bool, sets [][]string, gucs ...postgres.SyncNames) dcs.Sync {
	for _, v := range sets {
		if q, ok := keyQuorum(in, v, conf, gucs...); ok {
			return dcs.Sync{Leader: in.Me, SyncStandby: v, Quorum: q}
		}
	}
	return dcs.Sync{Leader: in.Me}
}

func keyEqual(a *dcs.Sync, b dcs.Sync) bool {
	return a != nil && strings.EqualFold(a.Leader, b.Leader) && a.Quorum == b.Quorum && sameSet(a.SyncStandby, b.SyncStandby)
}

// NextSyncStep is the leader's next synchronous replication step, and why. It is pure: the
// caller carries the step out and asks again with what it then observes.
func NextSyncStep(in SyncInput) (SyncStep, string) {
	if in.Mode != "on" && in.Mode != "quorum" {
		switch {
		case in.Key != nil:
			// Key before GUC: nobody may rely on the sync key once commits stop waiting.
			return SyncStep{Kind: DeleteSyncKey}, "synchronous_mode is off: removing the sync key"
		case in.Managed:
			return SyncStep{Kind: RestoreSyncGUC}, "synchronous_mode is off: synchronous_standby_names back to the configured value"
		}
		return SyncStep{}, ""
	}
	if in.Key == nil || !strings.EqualFold(in.Key.Leader, in.Me) {
		// A key written by another primary promises nothing about this one's commits.
		return SyncStep{Kind: WriteSyncKey, Key: dcs.Sync{Leader: in.Me}}, "sync key names another leader: taking it over, with no standby yet"
	}
	conf := confirmed(in)
	cands := syncCandidates(in)
	want := wantedGUC(in, cands)
	cur := *in.Key
	if !gucEqual(in.GUC, want) || !in.Managed {
		if q, ok := keyQuorum(in, cur.SyncStandby, conf, in.GUC, want); ok && q <= cur.Quorum {
			return SyncStep{Kind: SetSyncGUC, GUC: want}, fmt.Sprintf("synchronous_standby_names %q -> %q", in.GUC.String(), want.String())
		}
		// The key in place does not cover the new GUC: first shrink what it promises.
		// Growing the voters to the new GUC's standbys first is what lets quorum mode add a
		// standby without ever emptying the key.
		inWant := func(m string) bool { return want.Has(m) }
		k := bestKey(in, conf, [][]string{realNames(want), cur.SyncStandby, intersect(cur.SyncStandby, inWant),
			intersect(cur.SyncStandby, func(m string) bool { return inWant(m) && conf[strings.ToLower(m)] })}, in.GUC, want)
		if keyEqual(in.Key, k) {
			// Only when the key's quorum is too low for its own voters (edited by hand): the
			// recomputed key is the same set with a higher quorum, written above; never loop.
			return SyncStep{Kind: WriteSyncKey, Key: dcs.Sync{Leader: in.Me}}, "sync key does not keep its promise: emptying it"
		}
		return SyncStep{Kind: WriteSyncKey, Key: k}, fmt.Sprintf("sync key %s before synchronous_standby_names %q", describeKey(k), want.String())
	}
	// The GUC is where it should be: promise as much as is safe.
	listed := realNames(in.GUC)
	isConf := func(m string) bool { return conf[strings.ToLower(m)] || cur.Has(m) }
	k := bestKey(in, conf, [][]string{listed, intersect(listed, isConf),
		intersect(listed, func(m string) bool { return conf[strings.ToLower(m)] })}, in.GUC)
	if keyEqual(in.Key, k) {
		return SyncStep{}, ""
	}
	return SyncStep{Kind: WriteSyncKey, Key: k}, "sync key " + describeKey(k)
}

// keyStillSafe: the key in place keeps its promise for commits under the GUC in effect now (true
// whenever the previous steps were followed; false after someone else edited the key or the GUC).
func keyStillSafe(in SyncInput, k dcs.Sync) bool {
	if len(k.SyncStandby) == 0 {
		return true
	}
	return lackUnder(k.SyncStandby, in.GUC) <= k.Quorum && k.Quorum < len(k.SyncStandby) &&
		(in.Mode != "on" || k.Quorum == 0)
}

// realNames are the member names a GUC lists (not the strict placeholder or "*").
func realNames(g postgres.SyncNames) []string {
	var out []string
	for _, n := range g.Names {
		if n != StrictPlaceholder && n != "*" {
			out = append(out, n)
		}
	}
	return out
}

func describeKey(k dcs.Sync) string {
	if len(k.SyncStandby) == 0 {
		return "with no standby (only " + k.Leader + " may be promoted)"
	}
	return fmt.Sprintf("[%s] quorum %d", strings.Join(k.SyncStandby, ","), k.Quorum)
}

// canPromoteSync is the synchronous modes' gate on an automatic promotion of me: with a sync key
// naming a leader, only that leader and the key's voters may be promoted, and a voter only if it
// heard from Quorum other voters, none ahead of it (R + W > N). peers are this cycle's probes.
func canPromoteSync(v View) (bool, string) {
	s := v.Settings
	k := v.Cluster.Sync
	if s.SyncMode != "on" && s.SyncMode != "quorum" || k == nil || k.Leader == "" {
		return true, ""
	}
	if strings.EqualFold(k.Leader, v.Me) {
		return true, "" // the former primary has every commit it acknowledged
	}
	if !k.Has(v.Me) {
		return false, fmt.Sprintf("not a synchronous standby (the sync key lists %q)", strings.Join(k.SyncStandby, ","))
	}
	votes := 0
	for _, p := range v.Peers {
		if p.Name == v.Me || !p.Reachable || !k.Has(p.Name) {
			continue
		}
		if p.WALEnd > v.Local.WALEnd {
			return false, fmt.Sprintf("voter %s is ahead in WAL (%d > %d)", p.Name, p.WALEnd, v.Local.WALEnd)
		}
		votes++
	}
	if votes < k.Quorum {
		return false, fmt.Sprintf("quorum not reached: %d of the %d other voters needed answered (R+W>N)", votes, k.Quorum)
	}
	return true, ""
}
