package kubernetes

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tusker-ha/tusker/dcs"
	"github.com/tusker-ha/tusker/internal/kubeclient"
)

// Cluster lists the scope's objects and pods.
func (b *Backend) Cluster(ctx context.Context) (*dcs.Cluster, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	byName, leader, err := b.listObjects(ctx)
	if err != nil {
		return nil, err
	}
	var pods corev1.PodList
	err = b.try(ctx, "listing pods "+b.selector, func(ctx context.Context) error {
		return b.pods.Get().Namespace(b.opts.Namespace).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: b.selector}, kubeclient.ParameterCodec).
			MaxRetries(0).Do(ctx).Into(&pods)
	})
	if err != nil {
		return nil, err
	}

	kvs := b.objectKVs(byName, leader)
	kvs, mine := b.memberKVs(kvs, pods.Items)
	b.mu.Lock()
	b.pod = mine
	b.mu.Unlock()
	return b.keys.Decode(kvs), nil
}

// listObjects lists the scope's objects by name, and returns the leader's, which is read on its
// own when it is of another kind (a Lease) than the others.
func (b *Backend) listObjects(ctx context.Context) (map[string]*object, *object, error) {
	var objs []*object
	err := b.try(ctx, "listing "+b.objs.resource+" "+b.selector, func(ctx context.Context) error {
		var err error
		objs, err = b.objs.list(ctx, b.selector)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]*object{}
	for _, o := range objs {
		byName[o.name] = o
	}
	leader := byName[b.names.leader]
	if b.leaderKind != b.objs {
		if leader, err = b.getLeader(ctx, "reading"); err != nil {
			return nil, nil, err
		}
	}
	return byName, leader, nil
}

// objectKVs turns the annotations of the config, leader, failover and sync objects into the keys
// Patroni keeps in them, for dcs.Keys.Decode. The leader key is there only while observeLeader,
// which records the object as seen now, finds the lock valid.
func (b *Backend) objectKVs(byName map[string]*object, leader *object) []dcs.KV {
	var kvs []dcs.KV
	if o := byName[b.names.config]; o != nil {
		a := o.annotations
		if v, ok := a[annConfig]; ok {
			kvs = append(kvs, dcs.KV{Key: b.keys.Config(), Value: []byte(v), Version: o.version()})
		}
		if v, ok := a[annInitialize]; ok {
			kvs = append(kvs, dcs.KV{Key: b.keys.Initialize(), Value: []byte(v), Version: o.version()})
		}
		if v, ok := a[annHistory]; ok && v != "" {
			kvs = append(kvs, dcs.KV{Key: b.keys.History(), Value: []byte(v), Version: o.version()})
		}
	}
	holder, valid := b.observeLeader(leader)
	if leader != nil {
		a := leader.annotations
		if valid {
			kvs = append(kvs, dcs.KV{Key: b.keys.Leader(), Value: []byte(holder), Version: leader.version()})
		}
		if v := statusValue(a); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Status(), Value: v, Version: leader.version()})
		}
		if v := a[annFailsafe]; v != "" {
			kvs = append(kvs, dcs.KV{Key: b.keys.Failsafe(), Value: []byte(v), Version: leader.version()})
		}
	}
	if o := byName[b.names.failover]; o != nil {
		if v := failoverValue(o.annotations); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Failover(), Value: v, Version: o.version()})
		}
	}
	if o := byName[b.names.sync]; o != nil {
		if v := syncValue(o.annotations); v != nil {
			kvs = append(kvs, dcs.KV{Key: b.keys.Sync(), Value: v, Version: o.version()})
		}
	}
	return kvs
}

// memberKVs appends the member keys, which live in the pods' status annotations, to kvs, and
// returns this member's own pod (nil when it is not listed), which the backend keeps.
func (b *Backend) memberKVs(kvs []dcs.KV, pods []corev1.Pod) ([]dcs.KV, *corev1.Pod) {
	var mine *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if p.Name == b.opts.Name {
			mine = p
		}
		if v := p.Annotations[annStatus]; v != "" {
			rv, _ := strconv.ParseInt(p.ResourceVersion, 10, 64)
			kvs = append(kvs, dcs.KV{Key: b.keys.Member(p.Name), Value: []byte(v), Version: rv})
		}
	}
	return kvs, mine
}

// statusValue is the status key Patroni spreads over the optime, slots and retain_slots
// annotations, put together for dcs.Keys.Decode; a piece that does not parse makes the value
// invalid, so that the key is reported rather than read half.
func statusValue(a map[string]string) []byte {
	optime, slots, retain := a[annOptime], a[annSlots], a[annRetainSlots]
	if optime == "" && slots == "" && retain == "" {
		return nil
	}
	if optime == "" {
		optime = "0"
	}
	bad := func(what, v string) []byte { return []byte("invalid " + what + " annotation: " + v) }
	if _, err := strconv.ParseInt(optime, 10, 64); err != nil {
		return bad(annOptime, optime)
	}
	parts := []string{`"optime":` + optime}
	for _, p := range []struct{ name, v string }{{annSlots, slots}, {annRetainSlots, retain}} {
		if p.v == "" || p.v == "null" {
			continue
		}
		if !json.Valid([]byte(p.v)) {
			return bad(p.name, p.v)
		}
		parts = append(parts, strconv.Quote(p.name)+":"+p.v)
	}
	return []byte("{" + strings.Join(parts, ",") + "}")
}

// failoverValue is the failover key from the leader, member and scheduled_at annotations, or nil
// when none is set (Patroni clears the request by writing nulls).
func failoverValue(a map[string]string) []byte {
	m := map[string]string{}
	for _, k := range []string{annFailoverLeader, annFailoverMember, annScheduledAt} {
		if v := a[k]; v != "" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		return nil
	}
	v, _ := json.Marshal(m)
	return v
}

// syncValue is the sync key from the leader, sync_standby and quorum annotations, or nil when
// neither leader nor sync_standby is set (Patroni's delete_sync_state writes nulls).
func syncValue(a map[string]string) []byte {
	leader, standby := a[annSyncLeader], a[annSyncStandby]
	if leader == "" && standby == "" {
		return nil
	}
	m := map[string]any{"leader": nil, "sync_standby": nil}
	if leader != "" {
		m["leader"] = leader
	}
	if standby != "" {
		m["sync_standby"] = standby
	}
	if q, ok := a[annQuorum]; ok && q != "" {
		if n, err := strconv.Atoi(q); err == nil {
			m["quorum"] = n
		} else {
			m["quorum"] = q // a string: Decode reports the key invalid
		}
	}
	v, _ := json.Marshal(m)
	return v
}

// DeleteCluster deletes the scope's objects and the status annotations of its pods.
func (b *Backend) DeleteCluster(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	if err := b.deleteObject(ctx, b.leaderKind, b.names.leader); err != nil {
		return err
	}
	for _, n := range []string{b.names.config, b.names.failover, b.names.sync} {
		if err := b.deleteObject(ctx, b.objs, n); err != nil {
			return err
		}
	}
	b.observeLeader(nil)
	var pods corev1.PodList
	err := b.try(ctx, "listing pods "+b.selector, func(ctx context.Context) error {
		return b.pods.Get().Namespace(b.opts.Namespace).Resource("pods").
			VersionedParams(&metav1.ListOptions{LabelSelector: b.selector}, kubeclient.ParameterCodec).
			MaxRetries(0).Do(ctx).Into(&pods)
	})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if _, ok := p.Annotations[annStatus]; !ok {
			continue
		}
		if _, err := b.patchPod(ctx, p.Name, b.memberCleared()); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	b.mu.Lock()
	b.pod = nil
	b.mu.Unlock()
	return nil
}
