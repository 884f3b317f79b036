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

// switchoverPlan is what the steps of switchover and failover share: the command, the cluster
// as read before asking anything, and the flags as completed by the answers to the prompts.
type switchoverPlan struct {
	failover bool
	action   string // "switchover" or "failover": the REST path and the word in the messages
	name     string
	c        *dcs.Cluster
	leader   string // the leader in the DCS; "" when there is none
	o        switchoverOptions
	at       *time.Time // nil: now
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

	p := &switchoverPlan{failover: failover, action: action, name: name, c: c, leader: c.LeaderName(), o: o}
	if !failover {
		if err := a.switchoverLeader(p); err != nil {
			return err
		}
	}
	if err := a.switchoverCandidate(p); err != nil {
		return err
	}
	if !failover {
		if err := a.switchoverSchedule(p); err != nil {
			return err
		}
	}
	if !p.o.force {
		if err := a.confirmSwitchover(p); err != nil {
			return err
		}
	}
	return a.requestSwitchover(p)
}

// switchoverLeader settles --leader (asking for it without --force): a switchover needs a
// leader, and the one named must be the one in the DCS, so that an outdated view is caught.
func (a *app) switchoverLeader(p *switchoverPlan) error {
	if p.leader == "" {
		return fmt.Errorf("cluster %q has no leader: a switchover needs one (use failover --candidate)", p.name)
	}
	if p.o.leader == "" && !p.o.force {
		var err error
		if p.o.leader, err = a.ask("Primary", p.leader); err != nil {
			return err
		}
	}
	if p.o.leader == "" {
		p.o.leader = p.leader
	}
	if p.o.leader != p.leader {
		return fmt.Errorf("member %s is not the leader of cluster %q (the leader is %s)", p.o.leader, p.name, p.leader)
	}
	return nil
}

// switchoverCandidates are the members that may be promoted: not the leader, not nofailover;
// sorted, as the prompt lists them.
func switchoverCandidates(c *dcs.Cluster, leader string) []string {
	var candidates []string
	for _, m := range c.Members {
		if m.Name != leader && !patroni.NoFailover(m.Data.Tags) {
			candidates = append(candidates, m.Name)
		}
	}
	slices.Sort(candidates)
	return candidates
}

// switchoverCandidate settles --candidate (asking for it without --force) and checks it before
// anything is sent: a failover needs one, and it must be a member that may be promoted.
func (a *app) switchoverCandidate(p *switchoverPlan) error {
	candidates := switchoverCandidates(p.c, p.leader)
	if len(candidates) == 0 {
		return fmt.Errorf("no candidates found to %s to in cluster %q (members: %s; nofailover members cannot be promoted)",
			p.action, p.name, joinNames(memberNames(p.c.Members)))
	}
	if p.o.candidate == "" && !p.o.force {
		q := fmt.Sprintf("Candidate ['%s']", strings.Join(candidates, "', '"))
		var err error
		if p.o.candidate, err = a.ask(q, ""); err != nil {
			return err
		}
	}
	if p.failover && p.o.candidate == "" {
		return errors.New("Failover could be performed only to a specific candidate")
	}
	if p.o.candidate != "" && !slices.Contains(candidates, p.o.candidate) {
		if p.o.candidate == p.leader {
			return fmt.Errorf("member %s is already the leader of cluster %q", p.o.candidate, p.name)
		}
		return fmt.Errorf("member %s does not exist in cluster %q or is tagged as nofailover (candidates: %s)",
			p.o.candidate, p.name, joinNames(candidates))
	}
	return nil
}

// switchoverSchedule settles --scheduled (asking for it without --force) into p.at; a paused
// cluster cannot carry out a scheduled switchover, so it is refused here.
func (a *app) switchoverSchedule(p *switchoverPlan) error {
	if p.o.scheduled == "" && !p.o.force {
		example := a.now().Add(time.Hour).Format("2006-01-02T15:04")
		var err error
		if p.o.scheduled, err = a.ask("When should the switchover take place (e.g. "+example+")", "now"); err != nil {
			return err
		}
	}
	at, err := parseScheduled(p.o.scheduled, a.now())
	if err != nil {
		return err
	}
	p.at = at
	if p.at != nil && paused(p.c) {
		return errors.New("Can't schedule switchover in the paused state")
	}
	return nil
}

// confirmSwitchover asks the last question, naming the leader that will be demoted and, when
// scheduled, the time.
func (a *app) confirmSwitchover(p *switchoverPlan) error {
	demote := ""
	if p.leader != "" {
		demote = ", demoting current leader " + p.leader
	}
	q := fmt.Sprintf("Are you sure you want to %s cluster %s%s?", p.action, p.name, demote)
	if p.at != nil {
		q = fmt.Sprintf("Are you sure you want to schedule %s of cluster %s at %s%s?", p.action, p.name, p.at.Format(time.RFC3339), demote)
	}
	return a.confirm(q)
}

// body is the JSON the member's /switchover or /failover takes.
func (p *switchoverPlan) body() map[string]any {
	body := map[string]any{}
	if p.o.candidate != "" {
		body["candidate"] = p.o.candidate
	}
	if !p.failover {
		body["leader"] = p.o.leader
	}
	if p.at != nil {
		body["scheduled_at"] = p.at.Format(time.RFC3339)
	}
	return body
}

// order is the members to send the request to. The leader carries the request out; if it does
// not answer, any member can write the failover key and wait for the outcome. Without a leader
// the candidate, which will be promoted, is asked first.
func (p *switchoverPlan) order() []dcs.Member {
	order := leaderFirst(p.c)
	if p.leader == "" {
		slices.SortStableFunc(order, func(x, y dcs.Member) int {
			if x.Name == p.o.candidate {
				return -1
			}
			if y.Name == p.o.candidate {
				return 1
			}
			return 0
		})
	}
	return order
}

// requestSwitchover sends the request to the members in turn until one answers, and falls back
// to writing the failover key when none could be reached. A member that may have received the
// request ends the attempts, so that it is never carried out twice.
func (a *app) requestSwitchover(p *switchoverPlan) error {
	body := p.body()
	cl, err := a.client()
	if err != nil {
		return err
	}
	order := p.order()
	var lastErr error
	for i := range order {
		m := &order[i]
		res, err := cl.do(a.ctx, m, http.MethodPost, "/"+p.action, body, timeoutSwitchover)
		if err != nil {
			if !notSent(err) {
				return fmt.Errorf("%w; the %s may still be in progress: check with 'tuskerctl list %s'", err, p.action, p.name)
			}
			lastErr = err
			fmt.Fprintf(a.errOut, "tuskerctl: %v\n", err)
			continue
		}
		if res.Status != http.StatusOK && res.Status != http.StatusAccepted {
			return fmt.Errorf("%s failed, details: %d %s: %s", title(p.action), res.Status, http.StatusText(res.Status), res.Message())
		}
		fmt.Fprintf(a.out, "%s %s\n", a.timestamp(), res.Message())
		if c2, err := a.cluster(p.name); err == nil {
			a.printCluster(p.name, c2)
		}
		return nil
	}
	if a.ctx.Err() != nil {
		return a.ctx.Err()
	}
	fmt.Fprintf(a.out, "%s Could not %s using the REST API of any member (last error: %v), falling back to DCS\n",
		a.timestamp(), p.action, lastErr)
	return a.failoverViaDCS(p.name, p.c, p.action, p.o.leader, p.o.candidate, p.at)
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
