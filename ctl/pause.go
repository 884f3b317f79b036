package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tusker-ha/tusker/config"
	"github.com/tusker-ha/tusker/dcs"
)

func (a *app) pauseCommand(pause bool) *cobra.Command {
	var group int
	var wait bool
	c := &cobra.Command{
		Use:   "pause [CLUSTER]",
		Short: "Enter maintenance mode: members stop managing PostgreSQL",
		Long: `Put the cluster in maintenance mode (pause: true in its configuration): no automatic
failover, PostgreSQL is neither started, stopped nor promoted by tusker. --wait returns once
every member reports it.`,
		Example:           `  tuskerctl pause --wait`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: a.completeClusterArg,
	}
	if !pause {
		c.Use = "resume [CLUSTER]"
		c.Short = "Leave maintenance mode: members manage PostgreSQL again"
		c.Long = `Take the cluster out of maintenance mode. --wait returns once every member reports it.`
		c.Example = `  tuskerctl resume --wait`
	}
	a.command(c, func(_ *cobra.Command, args []string) error {
		if err := checkGroup(group); err != nil {
			return err
		}
		return a.togglePause(args, pause, wait)
	})
	groupFlag(c, &group)
	c.Flags().BoolVar(&wait, "wait", false, "wait until every member reports the change")
	return c
}

func (a *app) togglePause(args []string, pause, wait bool) error {
	word, done := "pause", "paused"
	if !pause {
		word, done = "resume", "resumed"
	}
	name, err := a.clusterName(args)
	if err != nil {
		return err
	}
	c, err := a.cluster(name)
	if err != nil {
		return err
	}
	if paused(c) == pause {
		if pause {
			return errors.New("Cluster is already paused")
		}
		return errors.New("Cluster is not paused")
	}
	body := map[string]any{"pause": nil}
	if pause {
		body["pause"] = true
	}
	sent, err := a.patchConfigViaMembers(c, body, word+" cluster management")
	if err != nil {
		return err
	}
	if !sent {
		// Nobody answered: write the key directly, so that the members find it when they are
		// back (a maintenance window may well start with every tusker stopped).
		fmt.Fprintf(a.errOut, "tuskerctl: no member's REST API answered; writing pause into the configuration in the DCS\n")
		if err := a.patchConfigDCS(name, c, body); err != nil {
			return err
		}
	}
	if wait {
		fmt.Fprintf(a.out, "'%s' request sent, waiting until it is recognized by all nodes\n", word)
		if err := a.waitPause(name, pause); err != nil {
			return err
		}
	}
	fmt.Fprintf(a.out, "Success: cluster management is %s\n", done)
	return nil
}

// patchConfigDCS merges patch into the config key with a compare-and-set on the version read.
func (a *app) patchConfigDCS(name string, c *dcs.Cluster, patch map[string]any) error {
	if c.Config == nil {
		return fmt.Errorf("cluster %q has no configuration in the DCS", name)
	}
	p, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding the configuration change: %w", err)
	}
	merged, err := config.MergePatch(c.Config.Value, p)
	if err != nil {
		return fmt.Errorf("changing the configuration of cluster %q: %w", name, err)
	}
	s, err := a.store(name)
	if err != nil {
		return err
	}
	if err := s.SetConfig(a.ctx, merged, c.Config.Version); err != nil {
		if errors.Is(err, dcs.ErrConflict) {
			return errors.New("the configuration changed concurrently; run the command again")
		}
		return fmt.Errorf("writing the configuration of cluster %q: %w", name, err)
	}
	return nil
}

// waitPause polls the member keys until each says pause as asked (members publish it after
// they have seen the configuration).
func (a *app) waitPause(name string, pause bool) error {
	shown := ""
	for {
		c, err := a.cluster(name)
		if err != nil {
			return err
		}
		var pending []string
		for _, m := range c.Members {
			if m.Data.Pause != pause {
				pending = append(pending, m.Name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if s := joinNames(pending); s != shown {
			fmt.Fprintf(a.errOut, "waiting for: %s\n", s)
			shown = s
		}
		select {
		case <-a.ctx.Done():
			return a.ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
