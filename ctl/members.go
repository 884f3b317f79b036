package ctl

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tusker-ha/tusker/dcs"
)

// Roles of -r/--role, as patronictl names them.
const (
	roleLeader        = "leader"         // the member holding the leader key, whatever it runs as
	rolePrimary       = "primary"        // the leader of a normal cluster
	roleStandbyLeader = "standby-leader" // the leader of a standby cluster
	roleReplica       = "replica"        // every member but the leader
	roleAny           = "any"
)

var roleNames = []string{roleLeader, rolePrimary, roleStandbyLeader, roleReplica, "standby", roleAny}

// parseRole normalises a -r value: standby is replica, master is primary (older patronictl).
func parseRole(s string) (string, error) {
	r := strings.ToLower(strings.TrimSpace(s))
	switch r {
	case "standby":
		return roleReplica, nil
	case "master":
		return rolePrimary, nil
	case "standby_leader":
		return roleStandbyLeader, nil
	case roleLeader, rolePrimary, roleStandbyLeader, roleReplica, roleAny:
		return r, nil
	}
	return "", usagef("unknown role %q (one of %s)", s, strings.Join(roleNames, ", "))
}

// hasRole reports whether member m of cluster c has role, with patronictl's meaning: leader,
// primary and standby-leader select the lock holder (primary unless it runs as a standby leader,
// standby-leader unless it runs as primary); replica every other member.
func hasRole(c *dcs.Cluster, m *dcs.Member, role string) bool {
	isLeader := m.Name == c.LeaderName()
	switch role {
	case roleAny, "":
		return true
	case roleLeader:
		return isLeader
	case rolePrimary:
		return isLeader && m.Data.Role != "standby_leader"
	case roleStandbyLeader:
		return isLeader && m.Data.Role != "primary" && m.Data.Role != "master"
	case roleReplica:
		return !isLeader
	}
	return false
}

// membersWithRole lists the members of c having role, leader first, then by name.
func membersWithRole(c *dcs.Cluster, role string) []dcs.Member {
	var out []dcs.Member
	for _, m := range leaderFirst(c) {
		if hasRole(c, &m, role) {
			out = append(out, m)
		}
	}
	return out
}

// leaderFirst is the members with the leader (if any) first, the others sorted by name.
func leaderFirst(c *dcs.Cluster) []dcs.Member {
	out := slices.Clone(c.Members)
	slices.SortStableFunc(out, func(a, b dcs.Member) int {
		la, lb := a.Name == c.LeaderName(), b.Name == c.LeaderName()
		switch {
		case la && !lb:
			return -1
		case lb && !la:
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

func memberNames(ms []dcs.Member) []string {
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return names
}

func joinNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// selectMembers picks the members named (all with role when none is named). A name that is not
// a member, or not one with role, is an error listing the members that would do.
func selectMembers(c *dcs.Cluster, scope string, names []string, role string) ([]dcs.Member, error) {
	withRole := membersWithRole(c, role)
	if len(names) == 0 {
		if len(withRole) == 0 {
			if role == roleAny || role == "" {
				return nil, fmt.Errorf("cluster %q has no members", scope)
			}
			return nil, fmt.Errorf("cluster %q has no member with role %s (members: %s)", scope, role,
				joinNames(memberNames(c.Members)))
		}
		return withRole, nil
	}
	var out []dcs.Member
	for _, n := range names {
		m := c.Member(n)
		if m == nil {
			return nil, fmt.Errorf("%q is not a member of cluster %q (members: %s)", n, scope,
				joinNames(memberNames(c.Members)))
		}
		if !hasRole(c, m, role) {
			return nil, fmt.Errorf("member %q of cluster %q does not have role %s (with that role: %s)", n, scope,
				role, joinNames(memberNames(withRole)))
		}
		if !slices.ContainsFunc(out, func(x dcs.Member) bool { return x.Name == n }) {
			out = append(out, *m)
		}
	}
	return out, nil
}

// findMember picks one member for dsn and query: the named one, else the first with role
// (default leader).
func findMember(c *dcs.Cluster, scope, member, role string) (*dcs.Member, error) {
	if member != "" {
		m := c.Member(member)
		if m == nil {
			return nil, fmt.Errorf("%q is not a member of cluster %q (members: %s)", member, scope,
				joinNames(memberNames(c.Members)))
		}
		return m, nil
	}
	if role == "" {
		role = roleLeader
	}
	ms := membersWithRole(c, role)
	if len(ms) == 0 {
		return nil, fmt.Errorf("cluster %q has no member with role %s (members: %s)", scope, role,
			joinNames(memberNames(c.Members)))
	}
	return &ms[0], nil
}
