package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Replication slots in the dynamic configuration (Patroni 4): permanent slots (`slots`, also
// read under Patroni's older names permanent_slots and permanent_replication_slots), slots tusker
// must never touch (`ignore_slots`), and how long a member's slot outlives its member key
// (`member_slots_ttl`).

// PermanentSlot is one entry of `slots`.
type PermanentSlot struct {
	Type     string // "physical" or "logical" (absent: logical when database and plugin are set)
	Database string // logical: the database the slot decodes
	Plugin   string // logical: the output plugin
	// ClusterType limits a physical slot to a primary cluster ("primary") or a standby cluster
	// ("standby"); "" is both.
	ClusterType string
}

// Logical reports whether the slot is a logical one.
func (s PermanentSlot) Logical() bool { return s.Type == "logical" }

// SlotMatcher is one entry of `ignore_slots`: a slot matches when every field that is set is
// equal to the slot's.
type SlotMatcher struct {
	Name, Type, Database, Plugin string
}

// Matches reports whether the slot (name, type "physical"/"logical", database, plugin) matches.
func (m SlotMatcher) Matches(name, typ, database, plugin string) bool {
	return (m.Name == "" || m.Name == name) && (m.Type == "" || m.Type == typ) &&
		(m.Database == "" || m.Database == database) && (m.Plugin == "" || m.Plugin == plugin)
}

// DefaultMemberSlotsTTL is Patroni's default member_slots_ttl.
const DefaultMemberSlotsTTL = 30 * time.Minute

// maxMemberSlotsTTL bounds member_slots_ttl: a slot keeps WAL on the primary for as long as it
// is kept, so a week is already far more than a reboot or a maintenance window needs.
const maxMemberSlotsTTL = 7 * 24 * time.Hour

// SlotNameRE is what PostgreSQL accepts as a replication slot name.
var SlotNameRE = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// pluginRE: an output plugin is a shared library name; it reaches pg_create_logical_replication_slot
// as a parameter, but a path or a quote there is never a plugin anyone meant.
var pluginRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,63}$`)

// permanentSlotKeys are the names Patroni reads permanent slots under, newest first.
var permanentSlotKeys = []string{"slots", "permanent_slots", "permanent_replication_slots"}

func (d *decoder) permanentSlots(path string, n *node) map[string]PermanentSlot {
	if !d.freeMap(path, n, "a map of slot names to slot settings") {
		return nil
	}
	out := make(map[string]PermanentSlot, len(n.keys))
	for _, name := range n.keys {
		p, v := joinPath(path, name), n.m[name]
		var s PermanentSlot
		if v.kind != nullNode && !d.section(p, v, "a map with type, database, plugin", map[string]func(string, *node){
			"type":         d.setStr(&s.Type, `"physical" or "logical"`),
			"database":     d.setStr(&s.Database, "a database name"),
			"plugin":       d.setStr(&s.Plugin, "an output plugin name"),
			"cluster_type": d.setStr(&s.ClusterType, `"primary" or "standby"`),
		}, func(p, _ string, _ *node) { d.unimplemented(p) }) {
			continue
		}
		if s.Type == "" {
			s.Type = "physical"
			if s.Database != "" && s.Plugin != "" {
				s.Type = "logical"
			}
		}
		out[name] = s
	}
	return out
}

func (d *decoder) ignoreSlots(path string, n *node) []SlotMatcher {
	d.track(path, n)
	switch n.kind {
	case nullNode:
		return nil
	case listNode:
	default:
		d.problem(path, n, "expected a list of slot matchers ({name, type, database, plugin}), got %s", describe(n))
		return nil
	}
	out := make([]SlotMatcher, 0, len(n.list))
	for i, it := range n.list {
		var m SlotMatcher
		if d.section(indexPath(path, i), it, "a map with name, type, database, plugin", map[string]func(string, *node){
			"name":     d.setStr(&m.Name, "a slot name"),
			"type":     d.setStr(&m.Type, `"physical" or "logical"`),
			"database": d.setStr(&m.Database, "a database name"),
			"plugin":   d.setStr(&m.Plugin, "an output plugin name"),
		}, func(p, _ string, _ *node) { d.unimplemented(p) }) && it.kind != nullNode {
			out = append(out, m)
		}
	}
	return out
}

// pgUnitDuration reads a duration as PostgreSQL (and Patroni's member_slots_ttl) writes it: a
// number of seconds, or a number with one of the units ms, s, min, h, d ("30min").
func (d *decoder) pgUnitDuration(path string, n *node, max time.Duration) (time.Duration, bool) {
	d.track(path, n)
	if n.kind == nullNode {
		return 0, false
	}
	if n.kind == scalarNode {
		if dur, ok := parsePGDuration(n.text); ok {
			if dur < 0 || dur > max {
				d.problem(path, n, "must be between 0 and %s, got %s", max, strings.TrimSpace(n.text))
				return 0, false
			}
			return dur, true
		}
	}
	d.problem(path, n, `expected a duration ("30min", "1h", "90s") or a number of seconds, got %s`, describe(n))
	return 0, false
}

var pgDurationRE = regexp.MustCompile(`^\s*(-?[0-9]{1,12})\s*(ms|s|min|h|d)?\s*$`)

func parsePGDuration(s string) (time.Duration, bool) {
	m := pgDurationRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	unit := map[string]time.Duration{"": time.Second, "ms": time.Millisecond, "s": time.Second,
		"min": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
	if v > math.MaxInt64/int64(unit) || v < math.MinInt64/int64(unit) {
		// Beyond what a Duration holds: out of any caller's range, which reports it.
		return time.Duration(math.MaxInt64), true
	}
	return time.Duration(v) * unit, true
}

// slotProblems checks the slot settings (keys relative to the dynamic configuration).
func (d Dynamic) slotProblems(add func(key, msg string)) {
	for name, s := range d.Slots {
		key := "slots." + name
		if !SlotNameRE.MatchString(name) {
			add(key, fmt.Sprintf("%q is not a valid replication slot name (lower case letters, digits and _, at most 63)", name))
		}
		switch s.Type {
		case "physical":
			if s.Database != "" || s.Plugin != "" {
				add(key, "a physical slot has no database or plugin (set type: logical, or both database and plugin)")
			}
		case "logical":
			if s.Database == "" || s.Plugin == "" {
				add(key, "a logical slot needs both database and plugin")
			}
			if s.ClusterType != "" {
				add(key+".cluster_type", "applies to physical slots only")
			}
		default:
			add(key+".type", fmt.Sprintf("must be physical or logical, got %q", s.Type))
		}
		if s.Database != "" && (len(s.Database) > 63 || textProblem(s.Database) != "" || strings.ContainsRune(s.Database, 0)) {
			add(key+".database", fmt.Sprintf("%q is not a database name", s.Database))
		}
		if s.Plugin != "" && !pluginRE.MatchString(s.Plugin) {
			add(key+".plugin", fmt.Sprintf("%q is not an output plugin name", s.Plugin))
		}
		switch s.ClusterType {
		case "", "primary", "standby":
		default:
			add(key+".cluster_type", fmt.Sprintf("must be primary or standby, got %q", s.ClusterType))
		}
	}
	for i, m := range d.IgnoreSlots {
		key := indexPath("ignore_slots", i)
		if m == (SlotMatcher{}) {
			add(key, "an empty matcher would match every slot: name at least one of name, type, database, plugin")
		}
		switch m.Type {
		case "", "physical", "logical":
		default:
			add(key+".type", fmt.Sprintf("must be physical or logical, got %q", m.Type))
		}
		for _, f := range []struct{ k, v string }{{"name", m.Name}, {"database", m.Database}, {"plugin", m.Plugin}} {
			if p := textProblem(f.v); p != "" {
				add(key+"."+f.k, p)
			}
		}
	}
}

// Ignored reports whether ignore_slots matches the slot.
func (d Dynamic) Ignored(name, typ, database, plugin string) bool {
	for _, m := range d.IgnoreSlots {
		if m.Matches(name, typ, database, plugin) {
			return true
		}
	}
	return false
}
