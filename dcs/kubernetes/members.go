package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tusker-ha/tusker/dcs"
)

// memberPatch is the merge patch of this member's pod: the status annotation (nil removes it) and
// the labels (nil removes one).
type memberPatch struct {
	status *string
	labels map[string]*string
}

// roleLabels are the pod labels for data, as Patroni sets them: the leader's role label says
// leader (or standby leader), a running non-primary says what it is (replica as the follower
// value), anything else has none; the temporary label carries the pre-4.0 values; the bootstrap
// labels are there only while the member bootstraps or clones.
func (b *Backend) roleLabels(data dcs.MemberData) map[string]*string {
	b.mu.Lock()
	leads := b.leaderName == b.opts.Name
	b.mu.Unlock()
	var role, tmp *string
	switch {
	case leads:
		role, tmp = strp(b.opts.LeaderLabelValue), strp("master")
		if data.Role == "standby_leader" {
			role = strp(b.opts.StandbyLeaderLabelValue)
		}
	case data.State == "running" && data.Role != "primary" && data.Role != "master" && data.Role != "":
		role, tmp = strp(data.Role), strp(data.Role)
		if data.Role == "replica" {
			role = strp(b.opts.FollowerLabelValue)
		}
	}
	labels := map[string]*string{b.opts.RoleLabel: role}
	if b.opts.TmpRoleLabel != "" {
		labels[b.opts.TmpRoleLabel] = tmp
	}
	boot := slices.Contains(bootstrapStates, data.State)
	for k, v := range b.opts.BootstrapLabels {
		labels[k] = nil
		if boot {
			labels[k] = strp(v)
		}
	}
	return labels
}

// memberCleared removes the status annotation and the labels TouchMember sets.
func (b *Backend) memberCleared() memberPatch {
	labels := map[string]*string{b.opts.RoleLabel: nil}
	if b.opts.TmpRoleLabel != "" {
		labels[b.opts.TmpRoleLabel] = nil
	}
	for k := range b.opts.BootstrapLabels {
		labels[k] = nil
	}
	return memberPatch{labels: labels}
}

// TouchMember writes the status annotation and the role labels of this member's pod when they
// differ from what the pod has (as last read or written).
func (b *Backend) TouchMember(ctx context.Context, data dcs.MemberData) error {
	v, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encoding member %s: %w", b.opts.Name, err)
	}
	status := string(v)
	labels := b.roleLabels(data)
	b.mu.Lock()
	p := b.pod
	b.mu.Unlock()
	if p != nil && p.Annotations[annStatus] == status && labelsMatch(p.Labels, labels) {
		return nil
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err = b.patchPod(ctx, b.opts.Name, memberPatch{status: &status, labels: labels})
	return err
}

func labelsMatch(have map[string]string, want map[string]*string) bool {
	for k, v := range want {
		h, ok := have[k]
		if (v == nil && ok) || (v != nil && (!ok || h != *v)) {
			return false
		}
	}
	return true
}

// DeleteMember removes the status annotation and the role labels from this member's pod.
func (b *Backend) DeleteMember(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err := b.patchPod(ctx, b.opts.Name, b.memberCleared())
	if apierrors.IsNotFound(err) {
		err = nil
	}
	b.mu.Lock()
	b.pod = nil
	b.mu.Unlock()
	return err
}

// patchPod merge-patches pod name; the answer becomes the cached copy of this member's pod.
func (b *Backend) patchPod(ctx context.Context, name string, mp memberPatch) (*corev1.Pod, error) {
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels": mp.labels, "annotations": map[string]*string{annStatus: mp.status}}})
	if err != nil {
		return nil, fmt.Errorf("encoding the patch of pod %s: %w", name, err)
	}
	var pod corev1.Pod
	err = b.try(ctx, "patching pod "+b.opts.Namespace+"/"+name, func(ctx context.Context) error {
		return b.pods.Patch(types.MergePatchType).Namespace(b.opts.Namespace).Resource("pods").Name(name).
			Body(body).MaxRetries(0).Do(ctx).Into(&pod)
	})
	if err != nil {
		return nil, err
	}
	if name == b.opts.Name {
		b.mu.Lock()
		b.pod = &pod
		b.mu.Unlock()
	}
	return &pod, nil
}
