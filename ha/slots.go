package ha

import (
	"maps"
	"slices"
	"time"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
	"github.com/tusker-ha/tusker/postgres"
)

// Replication slots, as Patroni 4 keeps them, with one difference that matters: tusker drops
// only slots it knows are its own (member slots and permanent slots), never one a user made.
// Everything here is pure: WantedSlots says which slots a member keeps, SlotOps turns that and
// what the server has into changes, RetainSlots keeps the retain_slots list of the status key.

// Slot is a replication slot a member keeps.
type Slot struct {
	Name     string
	Logical  bool
	Database string
	Plugin   string
	// Advance is, on a replica, the position the leader published for the slot; the local
	// copy is moved up to it (never back) so that it is in place should this member be promoted.
	Advance int64
	// Permanent: from the configuration's slots (else a member's slot).
	Permanent bool
	// Published is, for a logical slot on the leader, the position the status key holds for
	// it: the slot existed on a former primary. It is not created afresh here, since a new slot
	// would start at the current position and its consumers would silently miss every change
	// in between.
	Published int64
}

// SlotView is what the slot rules read.
type SlotView struct {
	Me      string
	Leader  bool // holds the leader lock (primary or standby leader)
	Standby bool // standby cluster
	Cluster *dcs.Cluster
	Dyn     config.Dynamic
	// NoFailover: this member may never be promoted: it keeps only the slots of the members
	// that stream from it.
	NoFailover bool
	// Retained are the member slot names kept for members whose key is gone (RetainSlots).
	Retained []string
}

// WantedSlots is the set of slots this member keeps, by name. Nothing matched by ignore_slots
// is in it.
func WantedSlots(v SlotView) map[string]Slot {
	d := v.Dyn
	if !d.PostgreSQL.UseSlots {
		return nil
	}
	want := map[string]Slot{}
	self := postgres.SlotName(v.Me)
	published := v.Cluster.Status.Slots
	leader := v.Cluster.LeaderName()
	if v.Leader {
		leader = v.Me
	}
	for _, m := range v.Cluster.Members {
		if m.Name == v.Me || patroni.NoStream(m.Data.Tags) {
			continue
		}
		from := patroni.ReplicateFrom(m.Data.Tags)
		// The member streams from where its own UpstreamOf sends it.
		streamsFromMe := cascadeSource(v.Cluster, m.Name, from, leader) == v.Me
		// With member_slots_ttl every member keeps every other member's slot (advanced from
		// the positions the leader publishes), so that a new primary already has them; a member
		// that can never be promoted keeps only its own cascading replicas'. Without it, a
		// member keeps the slots of the members streaming from it.
		if d.MemberSlotsTTL > 0 && !v.NoFailover || streamsFromMe {
			name := postgres.SlotName(m.Name)
			s := Slot{Name: name}
			if !v.Leader || !streamsFromMe {
				s.Advance = published[name]
				if (from != "" || !v.Leader) && m.Data.XLogLocation != nil {
					// A slot not in use is moved by the member's own position: a cascading
					// member's on the leader (Patroni's rule), and every copy on a replica,
					// the leader's own included, which nobody publishes (left in place, it
					// would keep all WAL on the replica from its creation on).
					s.Advance = max(s.Advance, *m.Data.XLogLocation)
				}
			}
			want[name] = s
		}
	}
	if !v.NoFailover {
		for _, name := range v.Retained {
			// retain_slots comes from the DCS: a name PostgreSQL would refuse is skipped here
			// rather than failing the whole batch in ApplySlots.
			if _, ok := want[name]; !ok && name != self && config.SlotNameRE.MatchString(name) {
				want[name] = Slot{Name: name, Advance: published[name]}
			}
		}
		permanentSlots(v, self, want)
	}
	for name, s := range want {
		if d.Ignored(name, postgres.SlotType(s.Logical), s.Database, s.Plugin) {
			delete(want, name)
		}
	}
	return want
}

// permanentSlots adds the configuration's permanent slots. Physical ones are kept on every
// member that may be promoted (advanced on replicas from the leader's positions); logical ones
// on the primary of a primary cluster (on PostgreSQL 15 a replica cannot create one; copying
// them to replicas is not implemented yet). A member's own name is never its own slot.
func permanentSlots(v SlotView, self string, want map[string]Slot) {
	for _, name := range slices.Sorted(maps.Keys(v.Dyn.Slots)) {
		p := v.Dyn.Slots[name]
		if name == self || !config.SlotNameRE.MatchString(name) {
			continue
		}
		if _, member := want[name]; member {
			continue // a member's slot of the same name wins (Patroni logs a conflict)
		}
		if !p.Logical() {
			if p.ClusterType == "primary" && v.Standby || p.ClusterType == "standby" && !v.Standby {
				continue
			}
			s := Slot{Name: name, Permanent: true}
			if !v.Leader {
				s.Advance = v.Cluster.Status.Slots[name]
			}
			want[name] = s
			continue
		}
		if v.Standby || !v.Leader {
			continue
		}
		want[name] = Slot{Name: name, Logical: true, Database: p.Database, Plugin: p.Plugin, Permanent: true,
			Published: v.Cluster.Status.Slots[name]}
	}
}

// walSegment is the granularity at which copies are advanced: PostgreSQL keeps or removes WAL
// by whole segments (16 MB unless initdb chose otherwise), so moving a slot within one frees
// nothing, while every move makes the slot dirty and costs an fsync of its state file at the
// next checkpoint, which a promotion waits for.
const walSegment = 16 << 20

// SlotOps turns the wanted slots and the server's into changes: create what is missing,
// advance replicas' copies whose published position is in a later WAL segment, and drop what is tusker's
// (owned) but no longer wanted, when inactive and not in maintenance mode. Slots matched by
// ignore_slots are never in any op. problems names the slots left alone and why: a slot of the same name but another kind, or
// a logical slot that existed on a former primary (Slot.Published) and is missing here.
func SlotOps(want map[string]Slot, have []postgres.SlotInfo, owned func(string) bool, d config.Dynamic) (ops []postgres.SlotOp, problems map[string]string) {
	existing := map[string]postgres.SlotInfo{}
	for _, s := range have {
		existing[s.Name] = s
	}
	problem := func(name, why string) {
		if problems == nil {
			problems = map[string]string{}
		}
		problems[name] = why
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		w := want[name]
		s, ok := existing[name]
		switch {
		case !ok && w.Logical && w.Published > 0:
			problem(name, "the permanent logical slot existed on the former primary but not here: created afresh it "+
				"would skip the changes its consumers have not read yet; not created (remove it from slots and add it "+
				"again to start it anew)")
		case !ok:
			ops = append(ops, postgres.SlotOp{Kind: postgres.CreateSlot, Name: name, Logical: w.Logical,
				Database: w.Database, Plugin: w.Plugin})
		case s.Logical != w.Logical || w.Logical && (s.Database != w.Database || s.Plugin != w.Plugin):
			problem(name, "a slot of that name exists with another type, database or plugin: left alone")
		case !w.Logical && w.Advance/walSegment > s.RestartLSN/walSegment && s.RestartLSN > 0 && !s.Active:
			ops = append(ops, postgres.SlotOp{Kind: postgres.AdvanceSlot, Name: name, LSN: w.Advance})
		}
	}
	if d.Pause {
		return ops, problems // maintenance mode: nothing is dropped (Patroni's rule)
	}
	for _, s := range have {
		if _, ok := want[s.Name]; ok || s.Active || !owned(s.Name) || d.Ignored(s.Name, s.Type(), s.Database, s.Plugin) {
			continue
		}
		ops = append(ops, postgres.SlotOp{Kind: postgres.DropSlot, Name: s.Name})
	}
	return ops, problems
}

// RetainSlots is the leader's bookkeeping of retain_slots (Patroni 4): every member slot that
// exists on the leader for a member whose key is present is seen now; a name not seen for
// member_slots_ttl is dropped from the list. seen is updated in place; the result is the list
// to publish, sorted (nil when empty), and the names that just expired.
func RetainSlots(seen map[string]time.Time, c *dcs.Cluster, me string, have []postgres.SlotInfo, d config.Dynamic, now time.Time) (list, expired []string) {
	members := map[string]bool{}
	for _, m := range c.Members {
		if !patroni.NoStream(m.Data.Tags) {
			members[postgres.SlotName(m.Name)] = true
		}
	}
	if c.Member(me) == nil {
		members[postgres.SlotName(me)] = true // our own key may be missing: temporarily listed, as Patroni
	}
	for _, s := range have {
		if _, permanent := d.Slots[s.Name]; members[s.Name] && !s.Logical && !permanent {
			seen[s.Name] = now
		}
	}
	for _, name := range slices.Sorted(maps.Keys(seen)) {
		if !now.Before(seen[name].Add(d.MemberSlotsTTL)) {
			delete(seen, name)
			expired = append(expired, name)
			continue
		}
		list = append(list, name)
	}
	return list, expired
}

// PublishedSlots are the positions the leader publishes in the status key's slots: its
// permanent slots and, with member_slots_ttl, its member slots (which the replicas advance
// their copies to). User slots are not published. A permanent logical slot that is missing
// keeps the position a former primary published (SlotOps' rule).
func PublishedSlots(want map[string]Slot, have []postgres.SlotInfo, d config.Dynamic) map[string]int64 {
	out := map[string]int64{}
	for _, w := range want {
		if w.Published > 0 {
			out[w.Name] = w.Published // missing here: the mark stays until the slot is removed from slots
		}
	}
	for _, s := range have {
		w, ok := want[s.Name]
		if !ok || (!w.Permanent && d.MemberSlotsTTL == 0) || s.Position() == 0 {
			continue
		}
		out[s.Name] = s.Position()
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
