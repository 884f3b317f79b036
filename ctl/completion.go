package ctl

import (
	"context"
	"slices"
	"time"

	"github.com/spf13/cobra"
)

// Shell completion (tuskerctl completion bash|zsh|fish|powershell) completes CLUSTER with the
// configured scope and MEMBER, --candidate, --leader and --member with the member names read
// from the DCS, within a short time limit so that a slow store never hangs the shell.

const completionTimeout = 3 * time.Second

func (a *app) scopeCompletion() []string {
	cfg, err := a.config()
	if err != nil || cfg.Scope == "" {
		return nil
	}
	return []string{cfg.Scope}
}

// completeClusterArg completes the CLUSTER argument.
func (a *app) completeClusterArg(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.scopeCompletion(), cobra.ShellCompDirectiveNoFileComp
}

// memberNamesOf lists the members of a cluster for completion; nothing on any error.
func (a *app) memberNamesOf(scope string) []string {
	ctx, cancel := context.WithTimeout(a.ctx, completionTimeout)
	defer cancel()
	saved := a.ctx
	a.ctx = ctx
	defer func() { a.ctx = saved }()
	c, err := a.cluster(scope)
	if err != nil {
		return nil
	}
	return memberNames(c.Members)
}

// completeMembersArgs completes CLUSTER, then the members not named yet (and flush's target).
func (a *app) completeMembersArgs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return a.scopeCompletion(), cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, n := range a.memberNamesOf(args[0]) {
		if !slices.Contains(args[1:], n) {
			out = append(out, n)
		}
	}
	if cmd.Name() == "flush" {
		out = append(out, "restart", "switchover")
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeMemberFlag completes a flag naming a member of CLUSTER (or of the configured scope).
func (a *app) completeMemberFlag(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	scope := ""
	if len(args) > 0 {
		scope = args[0]
	} else if s := a.scopeCompletion(); len(s) > 0 {
		scope = s[0]
	}
	if scope == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.memberNamesOf(scope), cobra.ShellCompDirectiveNoFileComp
}
