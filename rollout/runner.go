package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/tusker-ha/tusker/ha"
	"github.com/tusker-ha/tusker/internal/kubeclient"
)

// Options configure a Runner.
type Options struct {
	Config    *rest.Config // the DCS's own client configuration (the pod's service account)
	Namespace string
	Pod       string // this member's pod, whose owner is the StatefulSet
	// Status is the HA loop's published snapshot; Switchover asks the loop for one (ha.Node's).
	Status     func() *ha.Status
	Switchover func(context.Context, ha.SwitchoverRequest) ha.Result
	Interval   time.Duration // default 2 s
	Logger     *slog.Logger
}

// Runner follows the StatefulSet while this member leads and takes the steps Next decides.
// Members that do not lead make no API calls.
type Runner struct {
	opts Options
	api  rest.Interface
	log  *slog.Logger

	set        string // the StatefulSet's name, once found
	lastReason string
	refused    map[string]bool // API refusals already logged
}

// New builds the client; it does not contact the API server.
func New(o Options) (*Runner, error) {
	if o.Interval <= 0 {
		o.Interval = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	// The core group's REST client alone, as the Kubernetes DCS uses it: four requests of a few
	// fields each do not need client-go's typed clients (the apps and policy ones, with their
	// types, would add 2 MB to the binary of every member).
	c, err := kubeclient.Core(o.Config)
	if err != nil {
		return nil, fmt.Errorf("rollout: %w", err)
	}
	return &Runner{opts: o, api: c, log: o.Logger.With("component", "rollout"), refused: map[string]bool{}}, nil
}

// Run works until ctx ends.
func (r *Runner) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if done := r.cycle(ctx); done {
			return
		}
	}
}

// cycle is one observation and at most one step; it returns true when there will never be
// anything to do (this pod belongs to no StatefulSet).
func (r *Runner) cycle(ctx context.Context) bool {
	st := r.opts.Status()
	if st == nil || !st.Leading(time.Now()) {
		r.lastReason = ""
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, r.opts.Interval*5)
	defer cancel()
	s, ok, err := r.observe(cctx, st)
	if err != nil {
		r.complain("observe", "reading the StatefulSet for rolling updates failed", err)
		return false
	}
	if !ok {
		r.log.Info("this pod belongs to no StatefulSet: tusker does not roll out updates here", "pod", r.opts.Pod)
		return true
	}
	step := Next(s)
	if step.Reason != r.lastReason {
		level := slog.LevelDebug
		if step.Kind != None {
			level = slog.LevelInfo
		}
		r.log.Log(ctx, level, "rolling update: "+step.Reason, "step", step.Kind.String(), "revision", s.UpdateRevision)
		r.lastReason = step.Reason
	}
	switch step.Kind {
	case Evict:
		if err := r.evict(cctx, step.Pod); err != nil {
			r.complain("evict", "evicting pod "+step.Pod+" failed (a PodDisruptionBudget, or RBAC: tusker needs pods/eviction create)", err)
			return false
		}
		r.log.Info("evicted pod for the rolling update", "pod", step.Pod)
	case Switchover:
		res := r.opts.Switchover(ctx, ha.SwitchoverRequest{Leader: s.Me, Candidate: step.Candidate})
		if res.Code != http.StatusOK {
			r.log.Warn("rolling update: the switchover failed; retrying later", "candidate", step.Candidate, "code", res.Code, "message", res.Message)
		}
	}
	return false
}

// complain logs an API error once per kind of failure and then at debug level, so that a
// missing permission does not flood the log every two seconds.
func (r *Runner) complain(what, msg string, err error) {
	key := what + "/" + string(apierrors.ReasonForError(err))
	if r.refused[key] {
		r.log.Debug(msg, "err", err)
		return
	}
	r.refused[key] = true
	r.log.Warn(msg, "err", err)
}

// observe reads the StatefulSet and its pods (ok false when the pod has no StatefulSet).
func (r *Runner) observe(ctx context.Context, st *ha.Status) (State, bool, error) {
	ns := r.opts.Namespace
	if r.set == "" {
		var pod corev1.Pod
		if err := r.get(ctx, &pod, "/api/v1/namespaces", ns, "pods", r.opts.Pod); err != nil {
			return State{}, false, fmt.Errorf("reading pod %s/%s: %w", ns, r.opts.Pod, err)
		}
		ref := metav1.GetControllerOf(&pod)
		if ref == nil || ref.Kind != "StatefulSet" {
			return State{}, false, nil
		}
		r.set = ref.Name
	}
	var set statefulSet
	if err := r.get(ctx, &set, "/apis/apps/v1/namespaces", ns, "statefulsets", r.set); err != nil {
		return State{}, false, fmt.Errorf("reading StatefulSet %s/%s: %w", ns, r.set, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return State{}, false, fmt.Errorf("StatefulSet %s/%s: its selector: %w", ns, r.set, err)
	}
	var pods corev1.PodList
	req := r.api.Get().AbsPath("/api/v1/namespaces", ns, "pods").Param("labelSelector", sel.String())
	raw, err := req.Do(ctx).Raw()
	if err == nil {
		err = json.Unmarshal(raw, &pods)
	}
	if err != nil {
		return State{}, false, fmt.Errorf("listing the pods of StatefulSet %s/%s: %w", ns, r.set, err)
	}
	return state(st, &set, pods.Items), true, nil
}

// get reads one object at path into v.
func (r *Runner) get(ctx context.Context, v any, path ...string) error {
	raw, err := r.api.Get().AbsPath(path...).Do(ctx).Raw()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// statefulSet is the part of an apps/v1 StatefulSet that a rollout reads.
type statefulSet struct {
	Metadata struct {
		UID types.UID `json:"uid"`
	} `json:"metadata"`
	Spec struct {
		Replicas       *int32                `json:"replicas"`
		Selector       *metav1.LabelSelector `json:"selector"`
		UpdateStrategy struct {
			Type string `json:"type"`
		} `json:"updateStrategy"`
	} `json:"spec"`
	Status struct {
		UpdateRevision string `json:"updateRevision"`
	} `json:"status"`
}

// revisionLabel is the label the StatefulSet controller puts the pod's revision in.
const revisionLabel = "controller-revision-hash"

// evict asks for a policy/v1 Eviction of the pod: a delete that PodDisruptionBudgets may refuse.
func (r *Runner) evict(ctx context.Context, pod string) error {
	body := fmt.Sprintf(`{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":%q,"namespace":%q}}`, pod, r.opts.Namespace)
	return r.api.Post().AbsPath("/api/v1/namespaces", r.opts.Namespace, "pods", pod, "eviction").
		SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error()
}

// state puts the API's objects and the HA status into Next's terms.
func state(st *ha.Status, set *statefulSet, pods []corev1.Pod) State {
	s := State{Me: st.Name, Leading: st.Leading(time.Now()), Paused: st.Pause, SyncOn: st.SyncMode == "on",
		MaxLag: st.MaximumLagOnFailover, OnDelete: set.Spec.UpdateStrategy.Type == "OnDelete",
		UpdateRevision: set.Status.UpdateRevision, Replicas: 1}
	if set.Spec.Replicas != nil {
		s.Replicas = int(*set.Spec.Replicas)
	}
	for _, p := range pods {
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != set.Metadata.UID {
			continue
		}
		ordinal := -1
		if i := strings.LastIndex(p.Name, "-"); i >= 0 {
			ordinal, _ = strconv.Atoi(p.Name[i+1:])
		}
		ready := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		s.Pods = append(s.Pods, Pod{Name: p.Name, Ordinal: ordinal, Revision: p.Labels[revisionLabel],
			Ready: ready, Terminating: p.DeletionTimestamp != nil})
	}
	c := st.Cluster
	if c == nil {
		return s
	}
	s.FailoverPending = c.Failover != nil
	optime := c.Status.Optime
	for _, m := range c.Members {
		d := m.Data
		pos := int64(0)
		for _, p := range []*int64{d.XLogLocation, d.ReceiveLSN, d.ReplayLSN} {
			if p != nil {
				pos = max(pos, *p)
			}
		}
		lag := int64(0)
		if d.Role == "replica" && optime > pos {
			lag = optime - pos
		}
		s.Members = append(s.Members, Member{Name: m.Name, Role: d.Role, State: d.State,
			Streaming: d.ReplicationState == "streaming", Lag: lag, NoFailover: !ha.MemberEligible(m),
			SyncStandby: c.Sync.Has(m.Name)})
	}
	return s
}
