package ctl

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

// memberView is one member as list shows it.
type memberView struct {
	cluster  string
	name     string // with the tree prefix in topology
	host     string
	role     string
	state    string
	timeline int
	lag      any // megabytes, "unknown", or nil for the leader
	// The -e columns: positions as "X/X" ("unknown" when not published) and lags in megabytes.
	receiveLSN, receiveLag any
	replayLSN, replayLag   any
	pending                bool
	pendingReason          string
	scheduled              string
	tags                   map[string]any
	replicateFrom          string
	isLeader               bool
}

// clusterView is one cluster as list shows it: title, members and the footer lines.
type clusterView struct {
	name    string
	sysid   string
	members []memberView
	footer  []string
}

const mib = 1 << 20

// lagMB is a lag in whole megabytes, rounded half to even as Python's round() in patronictl.
func lagMB(bytes int64) int64 {
	return int64(math.RoundToEven(float64(bytes) / mib))
}

func lsnAndLag(lsn *int64, optime int64) (any, any) {
	if lsn == nil || *lsn == 0 {
		return "unknown", "unknown"
	}
	return patroni.FormatLSN(*lsn), lagMB(max(optime-*lsn, 0))
}

// connHostPort is a member's host and port for display (Patroni's rules, package patroni):
// nothing without a host, port 0 when it is not a port.
func connHostPort(connURL string) (string, int) {
	h, p, _ := patroni.ConnHostPort(connURL)
	return h, p
}

// buildClusterView turns the DCS snapshot (and, for -e, the members' /patroni answers) into rows.
func buildClusterView(scope string, c *dcs.Cluster, statuses map[string]map[string]any) clusterView {
	v := clusterView{name: scope}
	if c.Initialize != nil {
		v.sysid = *c.Initialize
	}
	rows := memberRows{scope: scope, c: c, leader: c.LeaderName(), appendPort: showPorts(c), syncRole: syncRoleName(c)}
	for _, m := range c.Members {
		v.members = append(v.members, rows.view(m, statuses[m.Name]))
	}
	v.footer = clusterFooter(c)
	return v
}

// memberRows is what every row of one cluster needs, worked out once for the cluster.
type memberRows struct {
	scope      string
	c          *dcs.Cluster
	leader     string
	appendPort bool   // see showPorts
	syncRole   string // see syncRoleName
}

// showPorts says whether hosts are shown with their ports, which patronictl does only when the
// ports tell members apart: some port is not 5432, or several members share a host.
func showPorts(c *dcs.Cluster) bool {
	hosts := map[string]bool{}
	appendPort := false
	for _, m := range c.Members {
		h, p := connHostPort(m.Data.ConnURL)
		if p != 0 && p != 5432 {
			appendPort = true
		}
		if hosts[h] {
			appendPort = true
		}
		hosts[h] = true
	}
	return appendPort
}

// syncRoleName is the role of a member listed in the sync key: a Sync Standby
// (synchronous_mode: on) or a Quorum Standby (quorum); with synchronous replication off the
// key means nothing and the result is "".
func syncRoleName(c *dcs.Cluster) string {
	switch syncMode(c) {
	case "on":
		return "Sync Standby"
	case "quorum":
		return "Quorum Standby"
	}
	return ""
}

// view is one member's row; st is the member's /patroni answer, or nil.
func (r memberRows) view(m dcs.Member, st map[string]any) memberView {
	mv := memberView{cluster: r.scope, name: m.Name, timeline: m.Data.Timeline, pending: m.Data.PendingRestart,
		tags: m.Data.Tags, isLeader: m.Name == r.leader}
	h, p := connHostPort(m.Data.ConnURL)
	mv.host = h
	if r.appendPort && h != "" {
		mv.host = h + ":" + strconv.Itoa(p)
	}
	mv.state = m.Data.State
	if mv.isLeader {
		mv.role = "Leader"
		if m.Data.Role == "standby_leader" {
			mv.role = "Standby Leader"
		}
	} else {
		mv.role = "Replica"
		if r.syncRole != "" && r.c.Sync.Has(m.Name) {
			mv.role = r.syncRole
		}
		if m.Data.ReplicationState != "" {
			mv.state = m.Data.ReplicationState
		}
		optime := r.c.Status.Optime
		_, mv.lag = lsnAndLag(m.Data.XLogLocation, optime)
		mv.receiveLSN, mv.receiveLag = lsnAndLag(m.Data.ReceiveLSN, optime)
		mv.replayLSN, mv.replayLag = lsnAndLag(m.Data.ReplayLSN, optime)
	}
	mv.replicateFrom = patroni.ReplicateFrom(m.Data.Tags)
	fillRestartInfo(&mv, m, st)
	return mv
}

// fillRestartInfo sets the pending restart reasons and the scheduled restart. tusker and
// Patroni 4 publish them in the member key; the member's /patroni (st, may be nil) fills in what
// an older member's key lacks.
func fillRestartInfo(mv *memberView, m dcs.Member, st map[string]any) {
	mv.pendingReason = memberPendingReason(m.Data.PendingRestartReason)
	if sr := m.Data.ScheduledRestart; sr != nil {
		mv.scheduled = scheduledRestart(map[string]any{"schedule": sr.Schedule, "postgres_version": sr.PostgresVersion})
	}
	if st != nil {
		if mv.pendingReason == "" {
			mv.pendingReason = pendingReason(st["pending_restart_reason"])
		}
		if p, _ := st["pending_restart"].(bool); p {
			mv.pending = true
		}
		if mv.scheduled == "" {
			mv.scheduled = scheduledRestart(st["scheduled_restart"])
		}
	}
}

// clusterFooter is the lines under the table: maintenance mode and a scheduled switchover.
func clusterFooter(c *dcs.Cluster) []string {
	var footer []string
	if paused(c) {
		footer = append(footer, "Maintenance mode: on")
	}
	if f := c.Failover; f != nil && f.ScheduledAt != nil {
		info := "Switchover scheduled at: " + f.ScheduledAt.Format("2006-01-02T15:04:05-07:00")
		if f.Leader != "" {
			info += fmt.Sprintf("\n%24s: %s", "from", f.Leader)
		}
		if f.Member != "" {
			info += fmt.Sprintf("\n%24s: %s", "to", f.Member)
		}
		footer = append(footer, info)
	}
	return footer
}

// paused reports whether the cluster's dynamic configuration says pause: true.
func paused(c *dcs.Cluster) bool {
	if c.Config == nil {
		return false
	}
	var cfg struct {
		Pause any `json:"pause"`
	}
	if json.Unmarshal(c.Config.Value, &cfg) != nil {
		return false
	}
	paused, _ := patroni.ParseBool(cfg.Pause)
	return paused
}

// syncMode is synchronous_mode from the cluster's dynamic configuration: "off", "on" or
// "quorum". Without a configuration key, or one that is not a JSON object, it is "off".
func syncMode(c *dcs.Cluster) string {
	if c.Config == nil {
		return "off"
	}
	// A problem elsewhere in the configuration does not hide a valid synchronous_mode.
	d, _ := config.ParseDynamic(c.Config.Value)
	return d.SyncMode()
}

func pendingReason(v any) string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return ""
	}
	var lines []string
	for _, k := range sortedKeys(m) {
		ch, _ := m[k].(map[string]any)
		lines = append(lines, fmt.Sprintf("%s: %v->%v", k, ch["old_value"], ch["new_value"]))
	}
	return strings.Join(lines, "\n")
}

func memberPendingReason(r map[string]dcs.ParamChange) string {
	if len(r) == 0 {
		return ""
	}
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(r)) {
		lines = append(lines, fmt.Sprintf("%s: %s->%s", k, r[k].OldValue, r[k].NewValue))
	}
	return strings.Join(lines, "\n")
}

func scheduledRestart(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["schedule"].(string)
	if s == "" {
		return ""
	}
	if pv, _ := m["postgres_version"].(string); pv != "" {
		s += " if version < " + pv
	}
	return s
}

// topologyOrder sorts the members as a tree: the leader, under it the replicas streaming from it,
// under each replica those cascading from it (tag replicatefrom), with patronictl's "+ " marks.
// Members the tree cannot reach (a replicatefrom cycle) go under the leader rather than vanish.
func topologyOrder(ms []memberView) []memberView {
	var leader *memberView
	names := map[string]bool{}
	for i := range ms {
		if ms[i].isLeader {
			leader = &ms[i]
		} else {
			names[ms[i].name] = true
		}
	}
	children := map[string][]memberView{}
	for _, m := range ms {
		if m.isLeader {
			continue
		}
		parent := ""
		if leader != nil {
			parent = leader.name
		}
		if p := m.replicateFrom; p != "" && p != m.name && names[p] {
			parent = p
		}
		children[parent] = append(children[parent], m)
	}
	var out []memberView
	seen := map[string]bool{}
	var walk func(m memberView, level int)
	walk = func(m memberView, level int) {
		if seen[m.name] {
			return
		}
		seen[m.name] = true
		orig := m.name
		if level > 0 {
			m.name = strings.Repeat("  ", level-1) + "+ " + m.name
		}
		out = append(out, m)
		for _, c := range children[orig] {
			walk(c, level+1)
		}
	}
	rootLevel := 0
	if leader != nil {
		walk(*leader, 0)
		rootLevel = 1
	} else {
		for _, c := range children[""] {
			walk(c, 0)
		}
	}
	for _, m := range ms {
		if !seen[m.name] {
			walk(m, rootLevel)
		}
	}
	return out
}

// memberTable lays member views out with patronictl's columns: the optional ones appear with -e,
// or as soon as one member has a value for them.
func memberTable(views []memberView, extended bool) *table {
	show := func(f func(memberView) bool) bool { return extended || slices.ContainsFunc(views, f) }
	cols := []string{"Cluster", "Member", "Host", "Role", "State", "TL", "Lag in MB"}
	if extended {
		cols = append(cols, "Receive LSN", "Receive Lag", "Replay LSN", "Replay Lag")
	}
	showPending := show(func(m memberView) bool { return m.pending })
	showReason := show(func(m memberView) bool { return m.pendingReason != "" })
	showScheduled := show(func(m memberView) bool { return m.scheduled != "" })
	showTags := show(func(m memberView) bool { return len(m.tags) > 0 })
	if showPending {
		cols = append(cols, "Pending restart")
	}
	if showReason {
		cols = append(cols, "Pending restart reason")
	}
	if showScheduled {
		cols = append(cols, "Scheduled restart")
	}
	if showTags {
		cols = append(cols, "Tags")
	}
	t := &table{columns: cols, omitEmpty: true, skip: 1, right: map[string]bool{
		"TL": true, "Lag in MB": true, "Receive LSN": true, "Receive Lag": true, "Replay LSN": true, "Replay Lag": true,
	}}
	for _, m := range views {
		var tl any
		if m.timeline > 0 {
			tl = m.timeline
		}
		row := []any{m.cluster, m.name, m.host, m.role, m.state, tl, m.lag}
		if extended {
			row = append(row, m.receiveLSN, m.receiveLag, m.replayLSN, m.replayLag)
		}
		if showPending {
			p := ""
			if m.pending {
				p = "*"
			}
			row = append(row, p)
		}
		if showReason {
			row = append(row, m.pendingReason)
		}
		if showScheduled {
			row = append(row, m.scheduled)
		}
		if showTags {
			var tags any
			if len(m.tags) > 0 {
				tags = m.tags
			}
			row = append(row, tags)
		}
		t.rows = append(t.rows, row)
	}
	return t
}

func (v clusterView) title() string {
	sysid := v.sysid
	if sysid == "" {
		sysid = "uninitialized"
	}
	return fmt.Sprintf(" Cluster: %s (%s) ", v.name, sysid)
}

// writeClusters prints clusters: pretty (and topology) as one table per cluster with its title
// and footer; tsv, json and yaml as one document with every member of every cluster.
func writeClusters(w io.Writer, views []clusterView, format string, extended, topology bool) error {
	if format == fmtPretty {
		for _, v := range views {
			ms := v.members
			if topology {
				ms = topologyOrder(ms)
			}
			t := memberTable(ms, extended)
			t.title = v.title()
			if err := t.write(w, fmtPretty); err != nil {
				return err
			}
			for _, f := range v.footer {
				if _, err := fmt.Fprintf(w, " %s\n", f); err != nil {
					return fmt.Errorf("writing the output: %w", err)
				}
			}
		}
		return nil
	}
	var all []memberView
	for _, v := range views {
		all = append(all, v.members...)
	}
	return memberTable(all, extended).write(w, format)
}

// listOptions are list's and topology's flags.
type listOptions struct {
	group     int
	extended  bool
	timestamp bool
	format    string
	watch     float64
	watchW    bool
}

func (a *app) listCommand(topology bool) *cobra.Command {
	var o listOptions
	c := &cobra.Command{
		Use:   "list [CLUSTER...]",
		Short: "Show the members of clusters, their roles, state, timeline and lag",
		Long: `Show the members of one or more clusters as read from the DCS: name, host, role,
state, timeline and replication lag behind the leader in MB. The role is Leader, Standby Leader,
Sync Standby (listed in the sync key with synchronous_mode: on), Quorum Standby (listed with
synchronous_mode: quorum) or Replica. Pending restarts and tags are shown when a member has them.
The footer says when maintenance mode is on or a switchover is scheduled.

With -e the received and replayed positions, the pending restart reasons and the scheduled
restarts are shown for every member (the last two are read from each member's REST API).`,
		Example: `  tuskerctl -c /etc/tusker.yml list
  tuskerctl list -e -f json
  tuskerctl list -W            # refresh every 2 seconds until Ctrl-C`,
		ValidArgsFunction: a.completeClusterArg,
	}
	if topology {
		c.Use = "topology [CLUSTER...]"
		c.Short = "Show the members of clusters as a replication tree"
		c.Long = `Like list, with each replica under the member it streams from: the leader, or
the member its replicatefrom tag names (cascading replication).`
		c.Example = `  tuskerctl topology
  tuskerctl topology -W`
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(o.group); err != nil {
			return err
		}
		format := fmtPretty
		if !topology {
			f, err := parseFormat(o.format, fmtPretty, fmtTSV, fmtJSON, fmtYAML)
			if err != nil {
				return err
			}
			format = f
		}
		if o.watch < 0 {
			return usagef("-w must be a positive number of seconds, got %v", o.watch)
		}
		names := args
		if len(names) == 0 {
			n, err := a.clusterName(nil)
			if err != nil {
				return err
			}
			names = []string{n}
		}
		return a.watchLoop(o.watch, o.watchW, func() error {
			if o.timestamp {
				fmt.Fprintln(a.out, a.now().Format("2006-01-02 15:04:05"))
			}
			views, err := a.clusterViews(names, o.extended)
			if err != nil {
				return err
			}
			return writeClusters(a.out, views, format, o.extended, topology)
		})
	})
	f := c.Flags()
	groupFlag(c, &o.group)
	f.BoolVarP(&o.extended, "extended", "e", false, "show the WAL positions, pending restart reasons, scheduled restarts and tags")
	f.BoolVarP(&o.timestamp, "timestamp", "t", false, "print the time before the table")
	if !topology {
		f.StringVarP(&o.format, "format", "f", fmtPretty, "output format: pretty, tsv, json or yaml")
	}
	f.BoolVarP(&o.watchW, "watch-2s", "W", false, "refresh every 2 seconds until interrupted")
	f.Float64VarP(&o.watch, "watch", "w", 0, "refresh every SEC seconds until interrupted")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{fmtPretty, fmtTSV, fmtJSON, fmtYAML}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// clusterViews reads clusters from the DCS (and with extended the members' /patroni).
func (a *app) clusterViews(names []string, extended bool) ([]clusterView, error) {
	var out []clusterView
	for _, n := range names {
		c, err := a.cluster(n)
		if err != nil {
			return nil, err
		}
		var statuses map[string]map[string]any
		// Only members whose key lacks the pending restart reasons (Patroni before 4) are asked.
		var ask []dcs.Member
		for _, m := range c.Members {
			if m.Data.PendingRestart && len(m.Data.PendingRestartReason) == 0 {
				ask = append(ask, m)
			}
		}
		if extended && len(ask) > 0 {
			cl, err := a.client()
			if err != nil {
				return nil, err
			}
			statuses = cl.statuses(a.ctx, ask, timeoutProbe)
		}
		out = append(out, buildClusterView(n, c, statuses))
	}
	return out, nil
}

// printCluster shows one cluster as a pretty table (before and after switchover, restart, ...).
func (a *app) printCluster(name string, c *dcs.Cluster) {
	_ = writeClusters(a.out, []clusterView{buildClusterView(name, c, nil)}, fmtPretty, false, false)
}

// watchLoop runs show once, or with -W/-w again every interval until interrupted; while
// watching, an error is printed and the loop goes on (the DCS may come back).
func (a *app) watchLoop(interval float64, every2 bool, show func() error) error {
	if every2 && interval == 0 {
		interval = 2
	}
	if interval <= 0 {
		return show()
	}
	d := time.Duration(interval * float64(time.Second))
	for {
		if a.env.StdoutTTY {
			fmt.Fprint(a.out, "\033[H\033[2J")
		}
		if err := show(); err != nil {
			if a.ctx.Err() != nil {
				return nil
			}
			fmt.Fprintf(a.errOut, "tuskerctl: %v\n", err)
		}
		select {
		case <-a.ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}
