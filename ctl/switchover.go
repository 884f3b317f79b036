package ctl

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/patroni"
)

// dcsFallbackWait is how long switchover and failover wait for the new leader after writing the
// failover key themselves (no member's REST API answered), and dcsFallbackPoll how often they
// look (variables for the tests).
var (
	dcsFallbackWait = 60 * time.Second
	dcsFallbackPoll = time.Second
)

var (
	zonedLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00", "2006-01-02 15:04:05Z07:00",
		"2006-01-02 15:04Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04Z0700"}
	naiveLayouts = []string{"2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04",
		"2006-01-02"}
)

// parseScheduled reads --scheduled: "now" (or nothing) is nil; a timestamp without a time zone
// is local time, as in patronictl.
func parseScheduled(s string, now time.Time) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "now") {
		return nil, nil
	}
	var t time.Time
	ok := false
	for _, l := range zonedLayouts {
		if v, err := time.Parse(l, s); err == nil {
			t, ok = v, true
			break
		}
	}
	if !ok {
		for _, l := range naiveLayouts {
			if v, err := time.ParseInLocation(l, s, now.Location()); err == nil {
				t, ok = v, true
				break
			}
		}
	}
	if !ok {
		return nil, usagef("unable to parse scheduled timestamp (%s): it should be in an unambiguous format, e.g. ISO 8601 (%s)",
			s, now.Add(time.Hour).Format("2006-01-02T15:04-07:00"))
	}
	if t.Before(now.Add(-time.Second)) {
		return nil, fmt.Errorf("the scheduled time %s is in the past", t.Format(time.RFC3339))
	}
	return &t, nil
}

type switchoverOptions struct {
	group     int
	leader    string
	candidate string
	scheduled string
	force     bool
}

func (a *app) switchoverCommand(failover bool) *cobra.Command {
	var o switchoverOptions
	action := "switchover"
	c := &cobra.Command{
		Use:   "switchover [CLUSTER]",
		Short: "Hand the leader role over to a replica (planned, optionally scheduled)",
		Long: `Ask the leader to hand over to a replica: it stops cleanly and the candidate (or, without
--candidate, the healthiest replica) is promoted. The command returns when the new primary runs
(the member answers within about a minute). Without --force it shows the cluster and asks for
the leader, the candidate, the time and a confirmation.

If no member's REST API answers, the request is written into the DCS failover key directly.`,
		Example: `  tuskerctl switchover --candidate n2 --force
  tuskerctl switchover demo --leader n1 --candidate n2 --scheduled 2030-01-02T03:00+00:00`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	if failover {
		action = "failover"
		c.Use = "failover [CLUSTER]"
		c.Short = "Promote a named replica (unplanned; works without a leader)"
		c.Long = `Promote the named candidate. With a running leader this is a switchover to that candidate;
without one (the leader is lost) the candidate is promoted. --candidate is required with --force;
without it tuskerctl asks for one.

If no member's REST API answers, the request is written into the DCS failover key directly.`
		c.Example = `  tuskerctl failover --candidate n3 --force`
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		return a.switchover(failover, action, o, args)
	})
	f := c.Flags()
	groupFlag(c, &o.group)
	if !failover {
		f.StringVar(&o.leader, "leader", "", "the current leader (checked against the DCS)")
		f.StringVar(&o.leader, "primary", "", "alias of --leader")
		f.StringVar(&o.scheduled, "scheduled", "", `when to switch over: "now" or an ISO 8601 time (local time without a zone)`)
		_ = c.RegisterFlagCompletionFunc("leader", a.completeMemberFlag)
		_ = c.RegisterFlagCompletionFunc("primary", a.completeMemberFlag)
	}
	f.StringVar(&o.candidate, "candidate", "", "the member to promote")
	f.BoolVar(&o.force, "force", false, "do not ask anything")
	_ = c.RegisterFlagCompletionFunc("candidate", a.completeMemberFlag)
	return c
}

func (a *app) switchover(failover bool, action string, o switchoverOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	if failover && o.force && o.candidate == "" {
		return usagef("failover --force needs --candidate")
	}
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	fmt.Fprintln(a.out, "Current cluster topology")
	a.printCluster(name, c)

	leader := c.LeaderName()
	if !failover {
		if leader == "" {
			return fmt.Errorf("cluster %q has no leader: a switchover needs one (use failover --candidate)", name)
		}
		if o.leader == "" && !o.force {
			if o.leader, err = a.ask("Primary", leader); err != nil {
				return err
			}
		}
		if o.leader == "" {
			o.leader = leader
		}
		if o.leader != leader {
			return fmt.Errorf("member %s is not the leader of cluster %q (the leader is %s)", o.leader, name, leader)
		}
	}

	var candidates []string
	for _, m := range c.Members {
		if m.Name != leader && !patroni.NoFailover(m.Data.Tags) {
			candidates = append(candidates, m.Name)
		}
	}
	slices.Sort(candidates)
	if len(candidates) == 0 {
		return fmt.Errorf("no candidates found to %s to in cluster %q (members: %s; nofailover members cannot be promoted)",
			action, name, joinNames(memberNames(c.Members)))
	}
	if o.candidate == "" && !o.force {
		q := fmt.Sprintf("Candidate ['%s']", strings.Join(candidates, "', '"))
		if o.candidate, err = a.ask(q, ""); err != nil {
			return err
		}
	}
	if failover && o.candidate == "" {
		return errors.New("Failover could be performed only to a specific candidate")
	}
	if o.candidate != "" && !slices.Contains(candidates, o.candidate) {
		if o.candidate == leader {
			return fmt.Errorf("member %s is already the leader of cluster %q", o.candidate, name)
		}
		return fmt.Errorf("member %s does not exist in cluster %q or is tagged as nofailover (candidates: %s)",
			o.candidate, name, joinNames(candidates))
	}

	var at *time.Time
	if !failover {
		if o.scheduled == "" && !o.force {
			example := a.now().Add(time.Hour).Format("2006-01-02T15:04")
			if o.scheduled, err = a.ask("When should the switchover take place (e.g. "+example+")", "now"); err != nil {
				return err
			}
		}
		if at, err = parseScheduled(o.scheduled, a.now()); err != nil {
			return err
		}
		if at != nil && paused(c) {
			return errors.New("Can't schedule switchover in the paused state")
		}
	}

	if !o.force {
		demote := ""
		if leader != "" {
			demote = ", demoting current leader " + leader
		}
		q := fmt.Sprintf("Are you sure you want to %s cluster %s%s?", action, name, demote)
		if at != nil {
			q = fmt.Sprintf("Are you sure you want to schedule %s of cluster %s at %s%s?", action, name, at.Format(time.RFC3339), demote)
		}
		if err := a.confirm(q); err != nil {
			return err
		}
	}

	body := map[string]any{}
	if o.candidate != "" {
		body["candidate"] = o.candidate
	}
	if !failover {
		body["leader"] = o.leader
	}
	if at != nil {
		body["scheduled_at"] = at.Format(time.RFC3339)
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	// The leader carries the request out; if it does not answer, any member can write the
	// failover key and wait for the outcome.
	order := leaderFirst(c)
	if leader == "" {
		slices.SortStableFunc(order, func(x, y dcs.Member) int {
			if x.Name == o.candidate {
				return -1
			}
			if y.Name == o.candidate {
				return 1
			}
			return 0
		})
	}
	var lastErr error
	for i := range order {
		m := &order[i]
		res, err := cl.do(a.ctx, m, http.MethodPost, "/"+action, body, timeoutSwitchover)
		if err != nil {
			if !notSent(err) {
				return fmt.Errorf("%w; the %s may still be in progress: check with 'tuskerctl list %s'", err, action, name)
			}
			lastErr = err
			fmt.Fprintf(a.errOut, "tuskerctl: %v\n", err)
			continue
		}
		if res.Status != http.StatusOK && res.Status != http.StatusAccepted {
			return fmt.Errorf("%s failed, details: %d %s: %s", title(action), res.Status, http.StatusText(res.Status), res.Message())
		}
		fmt.Fprintf(a.out, "%s %s\n", a.timestamp(), res.Message())
		if c2, err := a.cluster(name); err == nil {
			a.printCluster(name, c2)
		}
		return nil
	}
	if a.ctx.Err() != nil {
		return a.ctx.Err()
	}
	fmt.Fprintf(a.out, "%s Could not %s using the REST API of any member (last error: %v), falling back to DCS\n",
		a.timestamp(), action, lastErr)
	return a.failoverViaDCS(name, c, action, o.leader, o.candidate, at)
}

// failoverViaDCS writes the failover key (compare-and-set on the one read) and, unless the
// switchover is scheduled, waits for the leader to change.
func (a *app) failoverViaDCS(name string, c *dcs.Cluster, action, leader, candidate string, at *time.Time) error {
	s, err := a.store(name)
	if err != nil {
		return err
	}
	var version int64
	if c.Failover != nil {
		version = c.Failover.Version
	}
	if err := s.SetFailover(a.ctx, dcs.Failover{Leader: leader, Member: candidate, ScheduledAt: at}, version); err != nil {
		if errors.Is(err, dcs.ErrConflict) {
			return fmt.Errorf("writing the failover key of cluster %q: another request changed it concurrently; run %s again", name, action)
		}
		return fmt.Errorf("writing the failover key of cluster %q: %w", name, err)
	}
	if at != nil {
		fmt.Fprintf(a.out, "%s %s scheduled at %s (failover key written)\n", a.timestamp(), title(action), at.Format(time.RFC3339))
		return nil
	}
	old := c.LeaderName()
	deadline := time.Now().Add(dcsFallbackWait)
	for time.Now().Before(deadline) {
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(dcsFallbackPoll):
		}
		c2, err := a.cluster(name)
		if err != nil {
			continue
		}
		now := c2.LeaderName()
		if now != "" && now != old && (candidate == "" || now == candidate) {
			fmt.Fprintf(a.out, "%s Successfully %s over to %q\n", a.timestamp(), pastTense(action), now)
			a.printCluster(name, c2)
			return nil
		}
		if now != "" && now != old {
			fmt.Fprintf(a.out, "%s %s over to %q instead of %q\n", a.timestamp(), title(pastTense(action)), now, candidate)
			a.printCluster(name, c2)
			return nil
		}
	}
	return fmt.Errorf("the failover key was written, but the leader of cluster %q did not change within %s; check the members' logs",
		name, dcsFallbackWait)
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func pastTense(action string) string {
	if action == "failover" {
		return "failed"
	}
	return "switched"
}
