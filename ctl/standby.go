package ctl

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/dcs"
)

// demote-cluster and promote-cluster (Patroni 4.1): make a cluster a standby cluster of another
// one, and back, by setting or removing standby_cluster in its dynamic configuration, then wait
// until its leader runs in the new role.

type standbyOptions struct {
	host, restoreCommand, slot string
	port                       int
	force                      bool
}

func (a *app) demoteClusterCommand() *cobra.Command {
	var o standbyOptions
	c := &cobra.Command{
		Use:   "demote-cluster [CLUSTER]",
		Short: "Make the cluster a standby cluster of another one",
		Long: `Set standby_cluster in the cluster's dynamic configuration: its primary is stopped cleanly and
started as a standby leader replicating from --host (or from the archive with --restore-command),
and the other members follow it. Returns once the leader runs as the standby leader.`,
		Example:           `  tuskerctl demote-cluster --host 10.0.1.5 --port 5432 --force`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if o.host == "" && o.restoreCommand == "" {
			return errors.New("demote-cluster needs --host or --restore-command: where the standby cluster reads WAL from")
		}
		if o.port < 0 || o.port > 65535 {
			return fmt.Errorf("--port %d is not a port number", o.port)
		}
		sc := map[string]any{}
		for k, v := range map[string]string{"host": o.host, "restore_command": o.restoreCommand, "primary_slot_name": o.slot} {
			if v != "" {
				sc[k] = v
			}
		}
		if o.port != 0 {
			sc["port"] = o.port
		}
		return a.setStandbyCluster(args, sc, o.force)
	})
	f := c.Flags()
	f.StringVar(&o.host, "host", "", "the remote primary's host (or hosts, comma-separated)")
	f.IntVar(&o.port, "port", 0, "the remote primary's port (default 5432)")
	f.StringVar(&o.restoreCommand, "restore-command", "", "how to fetch WAL from the remote cluster's archive")
	f.StringVar(&o.slot, "primary-slot-name", "", "the replication slot to use on the remote primary")
	f.BoolVar(&o.force, "force", false, "do not ask for confirmation")
	return c
}

func (a *app) promoteClusterCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "promote-cluster [CLUSTER]",
		Short: "Make a standby cluster a primary cluster",
		Long: `Remove standby_cluster from the cluster's dynamic configuration: its standby leader is promoted and
the cluster takes writes. Returns once the leader runs as primary.`,
		Example:           `  tuskerctl promote-cluster --force`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	a.command(c, func(_ *cobra.Command, args []string) error { return a.setStandbyCluster(args, nil, force) })
	c.Flags().BoolVar(&force, "force", false, "do not ask for confirmation")
	return c
}

// setStandbyCluster writes standby_cluster (nil: removes it) through the leader's PATCH /config
// and waits until the leader's role is standby_leader (or primary).
func (a *app) setStandbyCluster(args []string, sc map[string]any, force bool) error {
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	want, word := "standby_leader", "demote"
	if sc == nil {
		want, word = "primary", "promote"
	}
	if l := c.Member(c.LeaderName()); l != nil && l.Data.Role == want {
		return fmt.Errorf("cluster %s is already a %s cluster", name, map[bool]string{true: "standby", false: "primary"}[sc != nil])
	}
	if err := a.confirmUnless(force, fmt.Sprintf("Are you sure you want to %s cluster %s?", word, name)); err != nil {
		return err
	}
	// A nil map is JSON null: PATCH /config then removes the section.
	sent, err := a.patchConfigViaMembers(c, map[string]any{"standby_cluster": sc}, word+" cluster")
	if err != nil {
		return err
	}
	if !sent {
		return fmt.Errorf("Failed: %s cluster: no member's REST API answered", word)
	}
	fmt.Fprintf(a.out, "%s request sent, waiting until the leader runs as %s\n", word, want)
	if err := a.waitLeaderRole(name, want, 5*time.Minute); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "Success: cluster %s is a %s cluster\n", name, map[bool]string{true: "standby", false: "primary"}[sc != nil])
	return nil
}

// patchConfigViaMembers sends PATCH /config to the first member that answers, leader first;
// sent is false when none answered. what names the change in the error of a refusal.
func (a *app) patchConfigViaMembers(c *dcs.Cluster, body map[string]any, what string) (sent bool, err error) {
	cl, err := a.client()
	if err != nil {
		return false, err
	}
	for _, m := range leaderFirst(c) {
		res, err := cl.do(a.ctx, &m, http.MethodPatch, "/config", body, timeoutAction)
		if err != nil {
			fmt.Fprintf(a.errOut, "tuskerctl: member %s is not accessible: %v\n", m.Name, err)
			continue
		}
		if res.Status != http.StatusOK {
			return false, fmt.Errorf("Failed: %s on member %s, %s", what, m.Name, res.Detail())
		}
		return true, nil
	}
	return false, nil
}

// waitLeaderRole waits until the lock holder's member key says role.
func (a *app) waitLeaderRole(name, role string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := a.cluster(name)
		if err != nil {
			return err
		}
		if l := c.Member(c.LeaderName()); l != nil && l.Data.Role == role && l.Data.State == "running" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leader of cluster %s does not run as %s after %s", name, role, timeout)
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
