// Package ctl holds tuskerctl's commands: they read the cluster from the DCS and print it the way
// patronictl does.
package ctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tusker-ha/tusker/dcs"
)

// List prints patronictl's member table: Member, Host, Role, State, TL, Lag in MB.
func List(w io.Writer, scope string, c *dcs.Cluster) error {
	sysid := ""
	if c.Initialize != nil {
		sysid = *c.Initialize
	}
	fmt.Fprintf(w, "+ Cluster: %s (%s)\n", scope, sysid)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Member\tHost\tRole\tState\tTL\tLag in MB\t")
	leader := c.LeaderName()
	for _, m := range c.Members {
		role := "Replica"
		if m.Name == leader {
			role = "Leader"
		}
		state := m.Data.State
		if m.Data.ReplicationState == "streaming" && m.Name != leader {
			state = "streaming"
		}
		lag := ""
		if m.Name != leader {
			lag = "unknown"
			if m.Data.XLogLocation != nil && c.Status.Optime > 0 {
				d := c.Status.Optime - *m.Data.XLogLocation
				if d < 0 {
					d = 0
				}
				lag = fmt.Sprintf("%d", d/(1<<20))
			}
		}
		host := strings.TrimPrefix(m.Data.ConnURL, "postgres://")
		host, _, _ = strings.Cut(host, "/")
		tl := ""
		if m.Data.Timeline > 0 {
			tl = fmt.Sprint(m.Data.Timeline)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", m.Name, host, role, state, tl, lag)
	}
	return tw.Flush()
}
