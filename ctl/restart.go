package ctl

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

// membersArgs splits [CLUSTER [MEMBER...]] into the cluster name (default: the scope) and the
// member names.
func (a *app) membersArgs(args []string) (string, []string, error) {
	name, err := a.clusterName(args)
	if err != nil {
		return "", nil, err
	}
	if len(args) > 1 {
		return name, args[1:], nil
	}
	return name, nil, nil
}

// targets reads the cluster named by [CLUSTER [MEMBER...]] and picks the members the command
// acts on: the named ones, or all, filtered by role.
func (a *app) targets(args []string, role string) (string, *dcs.Cluster, []dcs.Member, error) {
	name, names, err := a.membersArgs(args)
	if err != nil {
		return "", nil, nil, err
	}
	c, err := a.cluster(name)
	if err != nil {
		return "", nil, nil, err
	}
	members, err := selectMembers(c, name, names, role)
	if err != nil {
		return "", nil, nil, err
	}
	return name, c, members, nil
}

type restartOptions struct {
	group     int
	role      string
	anyOne    bool
	pgVersion string
	pending   bool
	timeout   string
	scheduled string
	force     bool
}

var pgVersionRE = regexp.MustCompile(`^\d{1,4}(\.\d{1,4}){1,2}$`)

func (a *app) restartCommand() *cobra.Command {
	var o restartOptions
	c := &cobra.Command{
		Use:   "restart [CLUSTER [MEMBER...]]",
		Short: "Restart PostgreSQL on members (now or scheduled)",
		Long: `Restart PostgreSQL on the named members (default: every member with --role). A restart now
returns when PostgreSQL is back. Conditions (--pending, --pg-version) make a member skip the
restart when they do not hold; --scheduled leaves the restart to the member at that time.`,
		Example: `  tuskerctl restart demo n2 --force
  tuskerctl restart demo --role replica --pending --force
  tuskerctl restart demo n1 --scheduled 2030-01-02T03:00+00:00`,
		ValidArgsFunction: a.completeMembersArgs,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.restart(o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.StringVarP(&o.role, "role", "r", roleAny, "restart the members with this role: "+strings.Join(roleNames, ", "))
	f.BoolVar(&o.anyOne, "any", false, "restart one member, picked at random among the selected ones")
	f.StringVar(&o.pgVersion, "pg-version", "", "restart only members running a PostgreSQL older than this version (e.g. 15.4)")
	f.BoolVar(&o.pending, "pending", false, "restart only members with a pending restart (changed parameters)")
	f.StringVar(&o.timeout, "timeout", "", "how long to wait for PostgreSQL to come back (seconds or a duration like 2m)")
	f.StringVar(&o.scheduled, "scheduled", "", `when: "now" or an ISO 8601 time (local time without a zone)`)
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roleNames, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// restartPlan is what the restart flags come to once checked: the role of the members to pick,
// how long to wait for each answer, and when the restart is to happen.
type restartPlan struct {
	role        string
	httpTimeout time.Duration
	at          *time.Time // nil: now
}

// parseRestartFlags checks every flag before the DCS is read, so that a typo costs nothing.
func (a *app) parseRestartFlags(o restartOptions) (restartPlan, error) {
	if err := checkGroup(o.group); err != nil {
		return restartPlan{}, err
	}
	role, err := parseRole(o.role)
	if err != nil {
		return restartPlan{}, err
	}
	if o.pgVersion != "" && !pgVersionRE.MatchString(o.pgVersion) {
		return restartPlan{}, usagef("--pg-version %q: expected a PostgreSQL version like 15.4 or 9.6.24", o.pgVersion)
	}
	httpTimeout := timeoutRestart
	if o.timeout != "" {
		d, ok := parseSeconds(o.timeout)
		if !ok {
			return restartPlan{}, usagef("--timeout %q: expected seconds or a duration like 2m, at most 1 day", o.timeout)
		}
		httpTimeout = d + 30*time.Second
	}
	at, err := parseScheduled(o.scheduled, a.now())
	if err != nil {
		return restartPlan{}, err
	}
	return restartPlan{role: role, httpTimeout: httpTimeout, at: at}, nil
}

// restartBody is the JSON the members' POST /restart takes: the conditions, the time and the
// timeout, each only when given.
func restartBody(o restartOptions, at *time.Time) map[string]any {
	body := map[string]any{}
	if o.pending {
		body["restart_pending"] = true
	}
	if o.pgVersion != "" {
		body["postgres_version"] = o.pgVersion
	}
	if at != nil {
		body["schedule"] = at.Format(time.RFC3339)
	}
	if o.timeout != "" {
		body["timeout"] = o.timeout
	}
	return body
}

func (a *app) restart(o restartOptions, args []string) error {
	plan, err := a.parseRestartFlags(o)
	if err != nil {
		return err
	}
	at := plan.at
	name, c, members, err := a.targets(args, plan.role)
	if err != nil {
		return err
	}
	if at != nil && paused(c) {
		return errors.New("Can't schedule restart in the paused state")
	}
	if o.anyOne {
		i := rand.IntN(len(members))
		members = members[i : i+1]
	}
	body := restartBody(o, at)
	if !o.force {
		a.printCluster(name, c)
		q := fmt.Sprintf("Are you sure you want to restart members %s?", joinNames(memberNames(members)))
		if at != nil {
			q = fmt.Sprintf("Are you sure you want to schedule a restart of members %s at %s?",
				joinNames(memberNames(members)), at.Format(time.RFC3339))
		}
		if err := a.confirm(q); err != nil {
			return err
		}
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	fails := failures{action: "restart"}
	for i := range members {
		m := &members[i]
		if at != nil && o.force {
			// As patronictl: --force replaces a restart already scheduled on the member.
			_, _ = cl.do(a.ctx, m, http.MethodDelete, "/restart", nil, timeoutRead)
		}
		res, err := cl.do(a.ctx, m, http.MethodPost, "/restart", body, plan.httpTimeout)
		fails.add(m.Name, a.reportRestart(m.Name, res, err, at != nil))
	}
	return fails.err()
}

// reportRestart prints what one member answered to POST /restart and says whether that counts
// as a success; scheduled tells a restart scheduled from one started in the background.
func (a *app) reportRestart(member string, res apiResult, err error, scheduled bool) bool {
	switch {
	case err != nil:
		fmt.Fprintf(a.out, "Failed: restart for member %s: %v\n", member, err)
		return false
	case res.Status == http.StatusOK:
		fmt.Fprintf(a.out, "Success: restart on member %s\n", member)
		return true
	case res.Status == http.StatusAccepted && scheduled:
		fmt.Fprintf(a.out, "Success: restart scheduled on member %s\n", member)
		return true
	case res.Status == http.StatusAccepted:
		fmt.Fprintf(a.out, "Success: restart started on member %s (%s)\n", member, res.Message())
		return true
	case res.Status == http.StatusConflict:
		fmt.Fprintf(a.out, "Failed: another restart is already scheduled on member %s\n", member)
		return false
	case res.Status == http.StatusServiceUnavailable && res.Message() == "restart conditions are not satisfied":
		// --pending, --pg-version and --role are filters: a member they exclude is skipped, not failed.
		fmt.Fprintf(a.out, "Skipped: restart conditions are not satisfied on member %s\n", member)
		return true
	default:
		fmt.Fprintf(a.out, "Failed: restart for member %s, %s\n", member, res.Detail())
		return false
	}
}

// parseSeconds reads a timeout: seconds (possibly fractional) or a Go duration, positive and at
// most config.MaxRestartTimeout, as the members accept it. The number is bounded before it becomes
// a Duration: 1e300 seconds would wrap around into a negative HTTP timeout.
func parseSeconds(s string) (time.Duration, bool) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if !(f > 0) || f > config.MaxRestartTimeout.Seconds() {
			return 0, false
		}
		d := time.Duration(f * float64(time.Second))
		return d, d > 0
	}
	d, err := time.ParseDuration(s)
	return d, err == nil && d > 0 && d <= config.MaxRestartTimeout
}

type reloadOptions struct {
	group int
	role  string
	force bool
}

func (a *app) reloadCommand() *cobra.Command {
	var o reloadOptions
	c := &cobra.Command{
		Use:   "reload [CLUSTER [MEMBER...]]",
		Short: "Make members re-read their configuration file (as SIGHUP)",
		Long: `Ask members to re-read their local configuration file and reload PostgreSQL with it, as
SIGHUP does. Changes to the cluster-wide configuration are made with edit-config instead.`,
		Example:           `  tuskerctl reload demo --force`,
		ValidArgsFunction: a.completeMembersArgs,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.reload(o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.StringVarP(&o.role, "role", "r", roleAny, "reload the members with this role: "+strings.Join(roleNames, ", "))
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roleNames, cobra.ShellCompDirectiveNoFileComp))
	return c
}

func (a *app) reload(o reloadOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	role, err := parseRole(o.role)
	if err != nil {
		return err
	}
	name, c, members, err := a.targets(args, role)
	if err != nil {
		return err
	}
	if !o.force {
		a.printCluster(name, c)
		if err := a.confirm(fmt.Sprintf("Are you sure you want to reload members %s?", joinNames(memberNames(members)))); err != nil {
			return err
		}
	}
	loopWait := config.DefaultDynamic().LoopWait
	if c.Config != nil {
		if d, err := config.ParseDynamic(c.Config.Value); err == nil {
			loopWait = d.LoopWait
		}
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	fails := failures{action: "reload"}
	for i := range members {
		m := &members[i]
		res, err := cl.do(a.ctx, m, http.MethodPost, "/reload", nil, timeoutAction)
		switch {
		case err != nil:
			fmt.Fprintf(a.out, "Failed: reload for member %s: %v\n", m.Name, err)
			fails.add(m.Name, false)
		case res.Status == http.StatusOK:
			fmt.Fprintf(a.out, "No changes to apply on member %s\n", m.Name)
			fails.add(m.Name, true)
		case res.Status == http.StatusAccepted:
			fmt.Fprintf(a.out, "Reload request received for member %s and will be processed within %d seconds\n", m.Name, loopWait)
			fails.add(m.Name, true)
		default:
			fmt.Fprintf(a.out, "Failed: reload for member %s, %s\n", m.Name, res.Detail())
			fails.add(m.Name, false)
		}
	}
	return fails.err()
}

type reinitOptions struct {
	group      int
	force      bool
	wait       bool
	fromLeader bool
}

func (a *app) reinitCommand() *cobra.Command {
	var o reinitOptions
	c := &cobra.Command{
		Use:   "reinit [CLUSTER] MEMBER...",
		Short: "Rebuild replicas from scratch (remove the data directory and clone again)",
		Long: `Remove the data directory of the named replicas and clone them again from a member (the
leader with --from-leader). --force also cancels an action already running on the member.
--wait returns when each replica runs again.`,
		Example:           `  tuskerctl reinit demo n3 --force --wait`,
		ValidArgsFunction: a.completeMembersArgs,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.reinit(o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation, and cancel a running action on the member")
	f.BoolVar(&o.wait, "wait", false, "wait until the replicas run again")
	f.BoolVar(&o.fromLeader, "from-leader", false, "clone from the leader even if a replica is tagged clonefrom")
	return c
}

func (a *app) reinit(o reinitOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	name, names, err := a.membersArgs(args)
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		if names, err = a.askReinitMembers(name, c, o.force); err != nil {
			return err
		}
	}
	members, err := selectMembers(c, name, names, roleReplica)
	if err != nil {
		return err
	}
	if !o.force {
		if err := a.confirm(fmt.Sprintf("Are you sure you want to reinitialize members %s?", joinNames(memberNames(members)))); err != nil {
			return err
		}
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	fails := failures{action: "reinitialize"}
	var waitOn []dcs.Member
	started := map[string]string{} // member -> postmaster_start_time before the request
	for i := range members {
		m := &members[i]
		if st, err := cl.status(a.ctx, m, timeoutProbe); err == nil {
			started[m.Name], _ = st["postmaster_start_time"].(string)
		}
		ok := a.reinitMember(cl, m, o)
		fails.add(m.Name, ok)
		if ok {
			waitOn = append(waitOn, *m)
		}
	}
	if o.wait && len(waitOn) > 0 {
		if err := a.waitReinit(cl, waitOn, started); err != nil {
			return err
		}
	}
	return fails.err()
}

// askReinitMembers asks which replicas to reinitialize when none is named: reinit removes data,
// so it never picks members by itself, and with --force (nobody to ask) it is a usage error.
func (a *app) askReinitMembers(name string, c *dcs.Cluster, force bool) ([]string, error) {
	replicas := memberNames(membersWithRole(c, roleReplica))
	if force {
		return nil, usagef("reinit needs CLUSTER and at least one MEMBER (replicas of %s: %s)", name, joinNames(replicas))
	}
	a.printCluster(name, c)
	ans, err := a.ask(fmt.Sprintf("Which member do you want to reinitialize [%s]?", joinNames(replicas)), "")
	if err != nil {
		return nil, err
	}
	names := strings.FieldsFunc(ans, func(r rune) bool { return r == ',' || r == ' ' })
	if len(names) == 0 {
		return nil, errAborted
	}
	return names, nil
}

// reinitMember sends POST /reinitialize to one member, prints the outcome and says whether the
// member accepted. When an action is already running there and --force was not given, the
// user may cancel it: the request is then sent again with force.
func (a *app) reinitMember(cl *apiClient, m *dcs.Member, o reinitOptions) bool {
	body := map[string]any{"force": o.force, "from_leader": o.fromLeader}
	for {
		res, err := cl.do(a.ctx, m, http.MethodPost, "/reinitialize", body, timeoutAction)
		if err != nil {
			fmt.Fprintf(a.out, "Failed: reinitialize for member %s: %v\n", m.Name, err)
			return false
		}
		if res.Status < 400 {
			fmt.Fprintf(a.out, "Success: reinitialize for member %s\n", m.Name)
			return true
		}
		if strings.HasSuffix(res.Message(), " already in progress") && !o.force {
			fmt.Fprintf(a.out, "Member %s: %s\n", m.Name, res.Message())
			if a.confirm("Do you want to cancel it and reinitialize anyway?") == nil {
				body["force"] = true
				continue
			}
		}
		fmt.Fprintf(a.out, "Failed: reinitialize for member %s, %s\n", m.Name, res.Detail())
		return false
	}
}

// reinitPoll is how often reinit --wait asks the members how far they are (shorter in tests).
var reinitPoll = 2 * time.Second

// waitReinit polls the members' /patroni until PostgreSQL runs again with a new start time (the
// state alone would say "running" before the member has even stopped it).
func (a *app) waitReinit(cl *apiClient, members []dcs.Member, before map[string]string) error {
	pending := members
	shown := ""
	states := map[string]string{}
	fails := failures{action: "reinitialize"}
	for len(pending) > 0 {
		names := joinNames(memberNames(pending))
		if names != shown {
			fmt.Fprintf(a.out, "Waiting for reinitialize to complete on: %s\n", names)
			shown = names
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(reinitPoll):
		}
		var still []dcs.Member
		for i := range pending {
			m := &pending[i]
			st, err := cl.status(a.ctx, m, timeoutProbe)
			if err != nil {
				still = append(still, *m) // restarting: the API may be briefly busy
				continue
			}
			state, _ := st["state"].(string)
			start, _ := st["postmaster_start_time"].(string)
			if state != states[m.Name] {
				states[m.Name] = state
				fmt.Fprintf(a.out, "%s %s: %s\n", a.timestamp(), m.Name, state)
			}
			switch {
			case state == "running" && start != "" && start != before[m.Name]:
				fmt.Fprintf(a.out, "Reinitialize is completed on: %s\n", m.Name)
				fails.add(m.Name, true)
			case strings.Contains(state, "failed"):
				fmt.Fprintf(a.out, "Reinitialize failed on: %s (state %q; see its log)\n", m.Name, state)
				fails.add(m.Name, false)
			default:
				still = append(still, *m)
			}
		}
		pending = still
	}
	return fails.err()
}

type flushOptions struct {
	group int
	role  string
	force bool
}

func (a *app) flushCommand() *cobra.Command {
	var o flushOptions
	c := &cobra.Command{
		Use:   "flush [CLUSTER [MEMBER...]] restart|switchover",
		Short: "Cancel scheduled restarts or a scheduled switchover",
		Long: `Cancel the restarts scheduled on members (restart), or the scheduled switchover of the
cluster (switchover; through a member's REST API, else by deleting the failover key).`,
		Example: `  tuskerctl flush demo restart --force
  tuskerctl flush demo switchover`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeMembersArgs,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.flush(o, args) })
	f := c.Flags()
	groupFlag(c, &o.group)
	f.StringVarP(&o.role, "role", "r", roleAny, "flush on the members with this role: "+strings.Join(roleNames, ", "))
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation")
	return c
}

func (a *app) flush(o flushOptions, args []string) error {
	if err := checkGroup(o.group); err != nil {
		return err
	}
	target := args[len(args)-1]
	if target != "restart" && target != "switchover" {
		return usagef("flush: the last argument must be restart or switchover, got %q", target)
	}
	role, err := parseRole(o.role)
	if err != nil {
		return err
	}
	name, names, err := a.membersArgs(args[:len(args)-1])
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	cl, err := a.client()
	if err != nil {
		return err
	}
	if target == "switchover" {
		return a.flushSwitchover(name, c, cl)
	}
	members, err := selectMembers(c, name, names, role)
	if err != nil {
		return err
	}
	if err := a.confirmUnless(o.force, fmt.Sprintf("Are you sure you want to flush the scheduled restarts of members %s?",
		joinNames(memberNames(members)))); err != nil {
		return err
	}
	fails := failures{action: "flush scheduled restart"}
	for i := range members {
		m := &members[i]
		res, err := cl.do(a.ctx, m, http.MethodDelete, "/restart", nil, timeoutAction)
		switch {
		case err != nil:
			fmt.Fprintf(a.out, "Failed: flush scheduled restart for member %s: %v\n", m.Name, err)
			fails.add(m.Name, false)
		case res.Status == http.StatusOK:
			fmt.Fprintf(a.out, "Success: flush scheduled restart for member %s\n", m.Name)
			fails.add(m.Name, true)
		case res.Status == http.StatusNotFound:
			fmt.Fprintf(a.out, "No scheduled restart for member %s\n", m.Name)
			fails.add(m.Name, true)
		default:
			fmt.Fprintf(a.out, "Failed: flush scheduled restart for member %s, %s\n", m.Name, res.Detail())
			fails.add(m.Name, false)
		}
	}
	return fails.err()
}

func (a *app) flushSwitchover(name string, c *dcs.Cluster, cl *apiClient) error {
	if c.Failover == nil || c.Failover.ScheduledAt == nil {
		fmt.Fprintln(a.out, "No pending scheduled switchover")
		return nil
	}
	var lastErr error
	for _, m := range leaderFirst(c) {
		res, err := cl.do(a.ctx, &m, http.MethodDelete, "/switchover", nil, timeoutAction)
		if err != nil {
			lastErr = err
			fmt.Fprintf(a.errOut, "tuskerctl: %v\n", err)
			continue
		}
		switch res.Status {
		case http.StatusOK:
			fmt.Fprintf(a.out, "Success: %s\n", res.Message())
			return nil
		case http.StatusNotFound:
			fmt.Fprintf(a.out, "No pending scheduled switchover (%s)\n", res.Message())
			return nil
		}
		return fmt.Errorf("flush switchover on member %s failed: %s", m.Name, res.Detail())
	}
	fmt.Fprintf(a.out, "%s Could not reach any member of cluster %s (last error: %v); deleting the failover key in the DCS\n",
		a.timestamp(), name, lastErr)
	s, err := a.store(name)
	if err != nil {
		return err
	}
	if err := s.DeleteFailover(a.ctx); err != nil {
		return fmt.Errorf("deleting the failover key of cluster %q: %w", name, err)
	}
	fmt.Fprintln(a.out, "Success: scheduled switchover deleted")
	return nil
}
