package ctl

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/dcs"
)

// historyTable is the history key as patronictl shows it.
func historyTable(h []dcs.HistoryEntry) *table {
	t := &table{columns: []string{"TL", "LSN", "Reason", "Timestamp", "New Leader"},
		right: map[string]bool{"TL": true, "LSN": true}}
	for _, e := range h {
		t.rows = append(t.rows, []any{e.Timeline, e.LSN, e.Reason, e.Timestamp, e.NewLeader})
	}
	return t
}

func (a *app) historyCommand() *cobra.Command {
	var group int
	var format string
	c := &cobra.Command{
		Use:   "history [CLUSTER]",
		Short: "Show the timeline history: promotions, with their WAL position, reason, time and new leader",
		Example: `  tuskerctl history
  tuskerctl history -f json`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		f, err := parseFormat(format, fmtPretty, fmtTSV, fmtJSON, fmtYAML)
		if err != nil {
			return err
		}
		name, err := a.clusterName(args)
		if err != nil {
			return err
		}
		cl, err := a.cluster(name)
		if err != nil {
			return err
		}
		return historyTable(cl.History).write(a.out, f)
	})
	groupFlag(c, &group)
	c.Flags().StringVarP(&format, "format", "f", fmtPretty, "output format: pretty, tsv, json or yaml")
	return c
}

func (a *app) dsnCommand() *cobra.Command {
	var group int
	var role, member string
	c := &cobra.Command{
		Use:   "dsn [CLUSTER]",
		Short: "Print a libpq connection string (host=... port=...) for a member",
		Long: `Print host and port of the leader (default), of the first member with --role, or of the
member named with --member, as a libpq connection string.`,
		Example: `  psql "$(tuskerctl dsn) dbname=postgres user=postgres"
  tuskerctl dsn -r replica`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(cmd *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		r, err := roleOrMember(cmd, role, member)
		if err != nil {
			return err
		}
		name, err := a.clusterName(args)
		if err != nil {
			return err
		}
		cl, err := a.cluster(name)
		if err != nil {
			return err
		}
		m, err := findMember(cl, name, member, r)
		if err != nil {
			return err
		}
		host, port := connHostPort(m.Data.ConnURL)
		if host == "" {
			return fmt.Errorf("member %s publishes no conn_url", m.Name)
		}
		fmt.Fprintf(a.out, "host=%s port=%d\n", host, port)
		return nil
	})
	groupFlag(c, &group)
	c.Flags().StringVarP(&role, "role", "r", "", "the role of the member: "+strings.Join(roleNames, ", ")+" (default leader)")
	c.Flags().StringVarP(&member, "member", "m", "", "the member's name")
	_ = c.RegisterFlagCompletionFunc("role", cobra.FixedCompletions(roleNames, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("member", a.completeMemberFlag)
	return c
}

// roleOrMember checks that at most one of --role and --member is given and parses the role.
func roleOrMember(cmd *cobra.Command, role, member string) (string, error) {
	if cmd.Flags().Changed("role") && member != "" {
		return "", usagef("--role and --member cannot be used together")
	}
	if role == "" {
		return "", nil
	}
	return parseRole(role)
}

// formatPGVersion writes server_version (150004) as 15.4, or 9.6.24 before version 10.
func formatPGVersion(v int) string {
	if v < 100000 {
		return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	return fmt.Sprintf("%d.%d", v/10000, v%100)
}

func (a *app) versionCommand() *cobra.Command {
	var group int
	c := &cobra.Command{
		Use:   "version [CLUSTER [MEMBER...]]",
		Short: "Print tuskerctl's version, and with CLUSTER the tusker and PostgreSQL version of members",
		Long: `Print tuskerctl's version. With CLUSTER, also the tusker (or Patroni) and PostgreSQL
version of each member (or of the named ones), read from their REST APIs. Without CLUSTER no
configuration is needed.`,
		ValidArgsFunction: a.completeMembersArgs,
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		fmt.Fprintf(a.out, "tuskerctl version %s\n", a.env.Version)
		if len(args) == 0 {
			return nil
		}
		fmt.Fprintln(a.out)
		name := args[0]
		cl, err := a.cluster(name)
		if err != nil {
			return err
		}
		members, err := selectMembers(cl, name, args[1:], roleAny)
		if err != nil {
			return err
		}
		api, err := a.client()
		if err != nil {
			return err
		}
		fails := failures{action: "reading the version"}
		for i := range members {
			m := &members[i]
			if m.Data.APIURL == "" {
				continue
			}
			st, err := api.status(a.ctx, m, timeoutRead)
			if err != nil {
				fmt.Fprintf(a.out, "%s: failed to get version: %v\n", m.Name, err)
				fails.add(m.Name, false)
				continue
			}
			p, _ := st["patroni"].(map[string]any)
			ver, _ := p["version"].(string)
			pg := ""
			if v, ok := st["server_version"].(float64); ok && v > 0 {
				pg = " PostgreSQL " + formatPGVersion(int(v))
			}
			fmt.Fprintf(a.out, "%s: tusker %s%s\n", m.Name, ver, pg)
			fails.add(m.Name, true)
		}
		return fails.err()
	})
	groupFlag(c, &group)
	return c
}

func (a *app) removeCommand() *cobra.Command {
	var group int
	var format string
	c := &cobra.Command{
		Use:   "remove CLUSTER",
		Short: "Remove every key of a cluster from the DCS",
		Long: `Remove all information about CLUSTER from the DCS (leader, members, configuration,
history, initialize key). There is no --force: the command asks for the cluster name, for
"Yes I am aware" and, while the cluster has a leader, for the leader's name (answers may be piped
on stdin). Stop tusker on every member first, or the running members write their keys again.`,
		Example:           `  printf '%s\n' demo 'Yes I am aware' n1 | tuskerctl remove demo`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		f, err := parseFormat(format, fmtPretty, fmtTSV, fmtJSON, fmtYAML)
		if err != nil {
			return err
		}
		name := args[0]
		cl, err := a.cluster(name)
		if err != nil {
			return err
		}
		if err := writeClusters(a.out, []clusterView{buildClusterView(name, cl, nil)}, f, false, false); err != nil {
			return err
		}
		ans, err := a.ask("Please confirm the cluster name to remove", "")
		if err != nil {
			return err
		}
		if ans != name {
			return errors.New("Cluster names specified do not match")
		}
		const aware = "Yes I am aware"
		ans, err = a.ask(fmt.Sprintf("You are about to remove all information in DCS for %s, please type: %q", name, aware), "")
		if err != nil {
			return err
		}
		if ans != aware {
			return fmt.Errorf("You did not exactly type %q", aware)
		}
		if leader := cl.LeaderName(); leader != "" {
			ans, err = a.ask("This cluster currently is healthy. Please specify the leader name to continue", "")
			if err != nil {
				return err
			}
			if ans != leader {
				return errors.New("You did not specify the current leader of the cluster")
			}
		}
		s, err := a.store(name)
		if err != nil {
			return err
		}
		if err := s.DeleteCluster(a.ctx); err != nil {
			return fmt.Errorf("removing cluster %q from the DCS: %w", name, err)
		}
		fmt.Fprintf(a.out, "Cluster %s removed from the DCS\n", name)
		if len(cl.Members) > 0 {
			fmt.Fprintf(a.errOut, "tuskerctl: note: %d members were registered (%s); those still running write their keys again\n",
				len(cl.Members), joinNames(memberNames(cl.Members)))
		}
		return nil
	})
	groupFlag(c, &group)
	c.Flags().StringVarP(&format, "format", "f", fmtPretty, "format of the member list shown first: pretty, tsv, json or yaml")
	return c
}
