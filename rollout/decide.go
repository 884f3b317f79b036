// Package rollout rolls a tusker StatefulSet onto a new revision the way an operator would: the
// leader replaces the out-of-date replicas one at a time, then hands its role to an updated
// replica with one switchover, and its own pod goes last. Kubernetes's own RollingUpdate replaces
// pods by ordinal, whichever is primary, and may move the primary role twice; with
// updateStrategy OnDelete the StatefulSet controller only recreates the pods someone deletes, and
// tusker is that someone. Next decides (pure, rule-tested); Runner observes and acts.
package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pod is one pod of the StatefulSet as the API shows it.
type Pod struct {
	Name        string
	Ordinal     int
	Revision    string // the controller-revision-hash label
	Ready       bool
	Terminating bool
}

// Member is the pod's member as the DCS shows it (member name = pod name).
type Member struct {
	Name        string
	Role        string // "primary" or "replica"
	State       string // "running", "starting", ...
	Streaming   bool   // a replica's replication_state is "streaming"
	Lag         int64  // bytes behind the leader's last known position (replicas)
	NoFailover  bool   // tagged nofailover (or failover_priority <= 0)
	SyncStandby bool   // listed in the sync key
}

// State is what Next decides from.
type State struct {
	Me       string // this member's name (its pod's)
	Leading  bool   // it holds the leader lock now
	Paused   bool   // maintenance mode
	OnDelete bool   // the StatefulSet's updateStrategy is OnDelete
	// SyncOn: synchronous_mode on, where only a synchronous standby may take over.
	SyncOn          bool
	FailoverPending bool // the failover key is set: a switchover is scheduled or under way
	MaxLag          int64
	Replicas        int    // spec.replicas
	UpdateRevision  string // status.updateRevision
	Pods            []Pod
	Members         []Member
}

// Kind is what Next asks for.
type Kind int

const (
	None       Kind = iota // nothing to do (not leading, nothing out of date, not ours)
	Wait                   // a rollout is under way but the cluster is not ready for its next step
	Evict                  // evict Pod (the controller recreates it at the new revision)
	Switchover             // hand the leader role to Candidate
)

func (k Kind) String() string {
	return [...]string{"none", "wait", "evict", "switchover"}[k]
}

// Step is Next's answer.
type Step struct {
	Kind      Kind
	Pod       string
	Candidate string
	Reason    string
}

// Next is the rollout's next step. One pod at a time, and only while every pod is ready and
// every member runs (replicas streaming): a rollout never takes a second member down while one
// is still coming back. Replicas go first, highest ordinal first as the controller would; the
// leader's own pod goes last, after a switchover to the best updated replica.
func Next(s State) Step {
	if !s.OnDelete {
		return Step{Kind: None, Reason: "the StatefulSet controller replaces the pods itself (updateStrategy is not OnDelete)"}
	}
	if !s.Leading {
		return Step{Kind: None, Reason: "not the leader"}
	}
	if s.Paused {
		return Step{Kind: None, Reason: "maintenance mode: rollouts wait"}
	}
	var outdated []Pod
	for _, p := range s.Pods {
		if s.UpdateRevision != "" && p.Revision != s.UpdateRevision {
			outdated = append(outdated, p)
		}
	}
	if len(outdated) == 0 {
		return Step{Kind: None, Reason: "every pod is at the StatefulSet's revision"}
	}
	if why := notReady(s); why != "" {
		return Step{Kind: Wait, Reason: why}
	}
	// The highest ordinal first among the replicas, as the StatefulSet controller goes.
	slices.SortFunc(outdated, func(a, b Pod) int { return cmp.Compare(b.Ordinal, a.Ordinal) })
	for _, p := range outdated {
		if p.Name != s.Me {
			return Step{Kind: Evict, Pod: p.Name, Reason: fmt.Sprintf("replica %s is at an old revision: replacing it", p.Name)}
		}
	}
	// Only this member's pod is left.
	c, why := candidate(s)
	switch {
	case c != "":
		return Step{Kind: Switchover, Candidate: c,
			Reason: fmt.Sprintf("every replica is at the new revision: handing over to %s before this pod is replaced", c)}
	case s.Replicas <= 1:
		return Step{Kind: Evict, Pod: s.Me, Reason: "the only member is at an old revision: replacing it (no one can take over)"}
	}
	return Step{Kind: Wait, Reason: "this pod is the last at an old revision, and " + why}
}

// notReady says why the cluster cannot take its next step ("" when it can).
func notReady(s State) string {
	if len(s.Pods) < s.Replicas {
		return fmt.Sprintf("waiting for %d pods (%d exist)", s.Replicas, len(s.Pods))
	}
	if s.FailoverPending {
		return "a switchover is scheduled or under way"
	}
	for _, p := range s.Pods {
		switch {
		case p.Terminating:
			return fmt.Sprintf("pod %s is terminating", p.Name)
		case !p.Ready:
			return fmt.Sprintf("pod %s is not ready", p.Name)
		}
		m := member(s, p.Name)
		switch {
		case m == nil:
			return fmt.Sprintf("pod %s has no member in the DCS yet", p.Name)
		case m.State != "running":
			return fmt.Sprintf("member %s is %s", p.Name, m.State)
		case p.Name != s.Me && (m.Role != "replica" || !m.Streaming):
			return fmt.Sprintf("member %s is not a streaming replica yet", p.Name)
		}
	}
	return ""
}

func member(s State, name string) *Member {
	for i := range s.Members {
		if s.Members[i].Name == name {
			return &s.Members[i]
		}
	}
	return nil
}

// candidate picks the updated replica to hand over to: streaming, allowed to fail over, within
// maximum_lag_on_failover, and in synchronous_mode on a synchronous standby; the least lag wins,
// then the highest ordinal. why says what ruled them all out.
func candidate(s State) (name, why string) {
	type option struct {
		m       *Member
		ordinal int
	}
	var opts []option
	var ruledOut []string
	for _, p := range s.Pods {
		if p.Name == s.Me || p.Revision != s.UpdateRevision {
			continue
		}
		m := member(s, p.Name)
		switch {
		case m == nil || m.Role != "replica" || !m.Streaming:
			ruledOut = append(ruledOut, p.Name+" is not streaming")
		case m.NoFailover:
			ruledOut = append(ruledOut, p.Name+" is tagged nofailover")
		case s.MaxLag > 0 && m.Lag > s.MaxLag:
			ruledOut = append(ruledOut, fmt.Sprintf("%s lags %d bytes (maximum_lag_on_failover %d)", p.Name, m.Lag, s.MaxLag))
		case s.SyncOn && !m.SyncStandby:
			ruledOut = append(ruledOut, p.Name+" is not a synchronous standby")
		default:
			opts = append(opts, option{m, p.Ordinal})
		}
	}
	if len(opts) == 0 {
		if len(ruledOut) == 0 {
			return "", "no replica can take over"
		}
		return "", "no replica can take over: " + strings.Join(ruledOut, "; ")
	}
	best := slices.MinFunc(opts, func(a, b option) int {
		return cmp.Or(cmp.Compare(a.m.Lag, b.m.Lag), cmp.Compare(b.ordinal, a.ordinal))
	})
	return best.m.Name, ""
}
