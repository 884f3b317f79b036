package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// A run is a stretch of acknowledged writes on one node with no failed attempt in between. Each
// commit happened within its attempt, between Start and End. With two writes or more, the node
// was accepting writes throughout from the first's acknowledgement to the last's start (Lo to Hi):
// a writer tries every 20 ms, and a demotion in between would have failed an attempt.
type run struct {
	Node   string
	Ops    []op // the acknowledged writes
	Lo, Hi time.Time
}

// spans says whether the run proves the node accepted writes throughout (Lo, Hi).
func (r run) spans() bool { return len(r.Ops) >= 2 && r.Lo.Before(r.Hi) }

// within says whether some write of r surely committed inside o's span.
func (r run) within(o run) bool {
	if !o.spans() {
		return false
	}
	for _, w := range r.Ops {
		if o.Lo.Before(w.Start) && w.End.Before(o.Hi) {
			return true
		}
	}
	return false
}

func runs(node string, ops []op) []run {
	var out []run
	var cur []op
	flush := func() {
		if len(cur) > 0 {
			out = append(out, run{Node: node, Ops: cur, Lo: cur[0].End, Hi: cur[len(cur)-1].Start})
		}
		cur = nil
	}
	for _, o := range ops {
		if !o.OK {
			flush()
			continue
		}
		cur = append(cur, o)
	}
	flush()
	return out
}

// A splitBrain is two nodes that both accepted writes, through clients that follow /primary, at a
// common moment.
type splitBrain struct{ A, B run }

func (s splitBrain) String() string {
	desc := func(r run) string {
		return fmt.Sprintf("%s accepted %d writes between %s and %s", r.Node, len(r.Ops),
			r.Ops[0].Start.Format("15:04:05.000"), r.Ops[len(r.Ops)-1].End.Format("15:04:05.000"))
	}
	return desc(s.A) + " while " + desc(s.B)
}

// findSplitBrains returns every pair of runs on different nodes that overlap: both spans overlap,
// or a write of one committed inside the other's span.
func findSplitBrains(history map[string][]op) []splitBrain {
	var all []run
	names := make([]string, 0, len(history))
	for name := range history {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		all = append(all, runs(name, history[name])...)
	}
	var out []splitBrain
	for i := range all {
		for j := i + 1; j < len(all); j++ {
			a, b := all[i], all[j]
			if a.Node == b.Node {
				continue
			}
			both := a.spans() && b.spans() && a.Lo.Before(b.Hi) && b.Lo.Before(a.Hi)
			if both || a.within(b) || b.within(a) {
				out = append(out, splitBrain{a, b})
			}
		}
	}
	return out
}

// lostWrites returns the acknowledged values missing from final, the rows the primary holds at
// the end.
func lostWrites(history map[string][]op, final map[int64]bool) []op {
	var lost []op
	for _, ops := range history {
		for _, o := range ops {
			if o.OK && !final[o.Value] {
				lost = append(lost, o)
			}
		}
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].Value < lost[j].Value })
	return lost
}

// An event is one fault or switchover as it happened.
type event struct {
	Kind   string
	What   string
	Healed time.Duration
}

type row struct {
	kind        string
	heals       []time.Duration
	acked, lost int
	counted     bool
}

// report prints the table and returns the final line's figures.
func report(w io.Writer, events []event, history map[string][]op, lost []op) (maxHeal time.Duration) {
	rows := map[string]*row{}
	// "count" is the events that healed; writes made during one that did not are in its row.
	order := append([]string{"(before)"}, faultKinds...)
	order = append(order, switchover)
	for _, k := range order {
		rows[k] = &row{kind: k}
	}
	kindOf := func(window int) string {
		if window < 0 || window >= len(events) {
			return "(before)"
		}
		return events[window].Kind
	}
	unhealed := 0
	for _, e := range events {
		r := rows[e.Kind]
		r.counted = true
		if e.Healed < 0 {
			unhealed++
			continue
		}
		r.heals = append(r.heals, e.Healed)
		if e.Healed > maxHeal {
			maxHeal = e.Healed
		}
	}
	total := &row{kind: "total"}
	for _, ops := range history {
		for _, o := range ops {
			if o.OK {
				rows[kindOf(o.Window)].acked++
				total.acked++
			}
		}
	}
	for _, o := range lost {
		rows[kindOf(o.Window)].lost++
		total.lost++
	}
	rows["(before)"].counted = true
	fmt.Fprintf(w, "%-16s %5s %12s %12s %9s %6s\n", "fault", "count", "heal_med_s", "heal_max_s", "acked", "lost")
	for _, k := range order {
		r := rows[k]
		if !r.counted {
			continue
		}
		med, mx := "-", "-"
		if len(r.heals) > 0 {
			sorted := append([]time.Duration(nil), r.heals...)
			sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
			med = fmt.Sprintf("%.1f", median(sorted).Seconds())
			mx = fmt.Sprintf("%.1f", sorted[len(sorted)-1].Seconds())
			total.heals = append(total.heals, r.heals...)
		}
		fmt.Fprintf(w, "%-16s %5d %12s %12s %9d %6d\n", r.kind, len(r.heals), med, mx, r.acked, r.lost)
	}
	fmt.Fprintln(w, strings.Repeat("-", 65))
	sort.Slice(total.heals, func(i, j int) bool { return total.heals[i] < total.heals[j] })
	med := "-"
	if len(total.heals) > 0 {
		med = fmt.Sprintf("%.1f", median(total.heals).Seconds())
	}
	fmt.Fprintf(w, "%-16s %5d %12s %12.1f %9d %6d\n", "total", len(total.heals), med, maxHeal.Seconds(), total.acked, total.lost)
	if unhealed > 0 {
		fmt.Fprintf(w, "(%d did not heal: not in the heal columns)\n", unhealed)
	}
	return maxHeal
}

func median(sorted []time.Duration) time.Duration {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}
