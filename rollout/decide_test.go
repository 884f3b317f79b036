package rollout

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// steady is a 3-member StatefulSet where pod-1 leads and the update is to revision "new"; revs
// gives each pod's revision.
func steady(revs ...string) State {
	s := State{Me: "pod-1", Leading: true, OnDelete: true, Replicas: 3, UpdateRevision: "new", MaxLag: 1 << 20}
	for i, r := range revs {
		name := []string{"pod-0", "pod-1", "pod-2"}[i]
		s.Pods = append(s.Pods, Pod{Name: name, Ordinal: i, Revision: r, Ready: true})
		role := "replica"
		if name == s.Me {
			role = "primary"
		}
		s.Members = append(s.Members, Member{Name: name, Role: role, State: "running", Streaming: role == "replica"})
	}
	return s
}

func TestRuleNothingToRoll(t *testing.T) {
	require.Equal(t, None, Next(steady("new", "new", "new")).Kind)
}

func TestRuleRollingUpdateIsTheControllers(t *testing.T) {
	s := steady("old", "old", "old")
	s.OnDelete = false
	require.Equal(t, None, Next(s).Kind, "with RollingUpdate the controller replaces the pods; tusker stays out")
}

func TestRuleOnlyTheLeaderRolls(t *testing.T) {
	s := steady("old", "old", "old")
	s.Leading = false
	require.Equal(t, None, Next(s).Kind)
	s = steady("old", "old", "old")
	s.Paused = true
	require.Equal(t, None, Next(s).Kind, "maintenance mode")
}

func TestRuleReplicasFirstHighestOrdinalFirst(t *testing.T) {
	require.Equal(t, Step{Kind: Evict, Pod: "pod-2"}, strip(Next(steady("old", "old", "old"))))
	require.Equal(t, Step{Kind: Evict, Pod: "pod-0"}, strip(Next(steady("old", "old", "new"))))
}

func TestRuleOneAtATime(t *testing.T) {
	s := steady("old", "old", "new")
	s.Pods[2].Ready = false // the pod just replaced is still starting
	require.Equal(t, Wait, Next(s).Kind)

	s = steady("old", "old", "new")
	s.Pods = s.Pods[:2] // evicted, not recreated yet
	require.Equal(t, Wait, Next(s).Kind)

	s = steady("old", "old", "old")
	s.Pods[2].Terminating = true
	require.Equal(t, Wait, Next(s).Kind)

	s = steady("old", "old", "new")
	s.Members[2].Streaming = false // ready (running) but not streaming yet
	require.Equal(t, Wait, Next(s).Kind)

	s = steady("old", "old", "new")
	s.Members = s.Members[:2] // no member key yet
	require.Equal(t, Wait, Next(s).Kind)

	s = steady("old", "old", "new")
	s.FailoverPending = true
	require.Equal(t, Wait, Next(s).Kind, "a switchover under way")
}

func TestRuleLeaderLastAfterOneSwitchover(t *testing.T) {
	s := steady("new", "old", "new")
	s.Members[0].Lag, s.Members[2].Lag = 100, 10
	require.Equal(t, Step{Kind: Switchover, Candidate: "pod-2"}, strip(Next(s)), "the least lagging updated replica")
	s.Members[0].Lag, s.Members[2].Lag = 0, 0
	require.Equal(t, Step{Kind: Switchover, Candidate: "pod-2"}, strip(Next(s)), "a tie goes to the highest ordinal")

	// After the switchover the new leader (pod-2) finds the old one a replica at the old revision.
	s = steady("new", "old", "new")
	s.Me = "pod-2"
	s.Members[1].Role, s.Members[1].Streaming = "replica", true
	s.Members[2].Role, s.Members[2].Streaming = "primary", false
	require.Equal(t, Step{Kind: Evict, Pod: "pod-1"}, strip(Next(s)))
}

func TestRuleCandidateMustBeAbleToTakeOver(t *testing.T) {
	s := steady("new", "old", "new")
	s.Members[0].NoFailover = true
	s.Members[2].Lag = 2 << 20
	step := Next(s)
	require.Equal(t, Wait, step.Kind)
	require.Contains(t, step.Reason, "nofailover")
	require.Contains(t, step.Reason, "maximum_lag_on_failover")

	s = steady("new", "old", "new")
	s.SyncOn = true
	s.Members[0].SyncStandby = true
	require.Equal(t, Step{Kind: Switchover, Candidate: "pod-0"}, strip(Next(s)), "synchronous_mode on: the synchronous standby")
}

func TestRuleSingleMemberRestartsInPlace(t *testing.T) {
	s := State{Me: "pod-0", Leading: true, OnDelete: true, Replicas: 1, UpdateRevision: "new",
		Pods:    []Pod{{Name: "pod-0", Revision: "old", Ready: true}},
		Members: []Member{{Name: "pod-0", Role: "primary", State: "running"}}}
	require.Equal(t, Step{Kind: Evict, Pod: "pod-0"}, strip(Next(s)))
}

func strip(s Step) Step { s.Reason = ""; return s }
