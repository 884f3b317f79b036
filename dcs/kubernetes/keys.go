package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tusker-ha/tusker/dcs"
)

// patchBody is a merge patch of labels and annotations (nil removes one), conditional on rv when
// it is set.
func patchBody(labels map[string]*string, ann map[string]*string, rv string) []byte {
	m := map[string]any{}
	if len(labels) > 0 {
		m["labels"] = labels
	}
	if len(ann) > 0 {
		m["annotations"] = ann
	}
	if rv != "" {
		m["resourceVersion"] = rv
	}
	body, _ := json.Marshal(map[string]any{"metadata": m})
	return body
}

func strp(s string) *string { return &s }

func (b *Backend) labelPatch() map[string]*string {
	m := make(map[string]*string, len(b.labels))
	for k, v := range b.labels {
		m[k] = strp(v)
	}
	return m
}

// setAnnotations merge-patches annotations onto object name (conditional on rv when set), and
// creates the object when it does not exist, rv is empty and create is true.
func (b *Backend) setAnnotations(ctx context.Context, k *kind, name string, ann map[string]*string, rv string, create bool) (*object, error) {
	op := "annotating " + k.resource + " " + b.opts.Namespace + "/" + name
	body := patchBody(b.labelPatch(), ann, rv)
	for {
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = k.patch(ctx, name, body)
			return err
		})
		if !apierrors.IsNotFound(err) || rv != "" || !create {
			return res, err
		}
		res, err = b.create(ctx, k, name, ann)
		if !apierrors.IsAlreadyExists(err) {
			return res, err
		}
		// Created meanwhile by somebody else: patch it after all.
	}
}

// create creates object name with the cluster labels and the non-nil annotations.
func (b *Backend) create(ctx context.Context, k *kind, name string, ann map[string]*string) (*object, error) {
	o := &object{name: name, annotations: map[string]string{}}
	for a, v := range ann {
		if v != nil {
			o.annotations[a] = *v
		}
	}
	obj := k.encode(o, b.labels)
	var res *object
	err := b.try(ctx, "creating "+k.resource+" "+b.opts.Namespace+"/"+name, func(ctx context.Context) error {
		var err error
		res, err = k.create(ctx, obj)
		return err
	})
	return res, err
}

// cas writes annotations with dcs version semantics: version < 0 unconditionally, > 0 on that
// resourceVersion, 0 only while present(object) is false (the object absent, or there without
// the key), checked and written on one resourceVersion.
func (b *Backend) cas(ctx context.Context, k *kind, name string, ann map[string]*string, version int64, present func(*object) bool) error {
	desc := k.resource + " " + b.opts.Namespace + "/" + name
	if b.opts.UseEndpoints && k == b.objs && name == b.names.config {
		b.ensureConfigService(ctx)
	}
	switch {
	case version < 0:
		_, err := b.setAnnotations(ctx, k, name, ann, "", true)
		return err
	case version > 0:
		_, err := b.setAnnotations(ctx, k, name, ann, strconv.FormatInt(version, 10), false)
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return fmt.Errorf("writing %s at version %d: %w", desc, version, dcs.ErrConflict)
		}
		return err
	}
	for {
		var cur *object
		err := b.try(ctx, "reading "+desc, func(ctx context.Context) error {
			var err error
			cur, err = k.get(ctx, name)
			return err
		})
		if apierrors.IsNotFound(err) {
			_, err = b.create(ctx, k, name, ann)
			if apierrors.IsAlreadyExists(err) {
				continue // created meanwhile: look at what it holds
			}
			return err
		}
		if err != nil {
			return err
		}
		if present(cur) {
			return fmt.Errorf("creating the key in %s: it exists: %w", desc, dcs.ErrConflict)
		}
		_, err = b.setAnnotations(ctx, k, name, ann, cur.rv, false)
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return err
		}
		// The object changed meanwhile (maybe another key on it): look again.
	}
}

// ensureConfigService creates the headless Service <scope>-config in Endpoints mode, as Patroni
// does: the endpoints controller deletes Endpoints without a Service when it starts.
func (b *Backend) ensureConfigService(ctx context.Context) {
	b.mu.Lock()
	done := b.configSvc
	b.mu.Unlock()
	if done {
		return
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: b.names.config, Namespace: b.opts.Namespace, Labels: b.labels},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone},
	}
	err := b.try(ctx, "creating service "+b.opts.Namespace+"/"+b.names.config, func(ctx context.Context) error {
		return b.pods.Post().Namespace(b.opts.Namespace).Resource("services").Body(svc).MaxRetries(0).Do(ctx).Error()
	})
	if err == nil || apierrors.IsAlreadyExists(err) || apierrors.IsForbidden(err) {
		if apierrors.IsForbidden(err) {
			b.log.Warn("cannot create the config service; the endpoints controller may delete the config Endpoints when it restarts",
				"service", b.names.config, "err", err)
		}
		b.mu.Lock()
		b.configSvc = true
		b.mu.Unlock()
		return
	}
	b.log.Warn("creating the config service failed; will retry", "service", b.names.config, "err", err)
}

func hasAnnotation(key string) func(*object) bool {
	return func(o *object) bool {
		_, ok := o.annotations[key]
		return ok
	}
}

// Initialize races for the initialize annotation (create) or sets it.
func (b *Backend) Initialize(ctx context.Context, value string, create bool) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	version := int64(-1)
	if create {
		version = 0
	}
	err := b.cas(ctx, b.objs, b.names.config, map[string]*string{annInitialize: &value}, version, hasAnnotation(annInitialize))
	if errors.Is(err, dcs.ErrConflict) {
		return false, nil
	}
	return err == nil, err
}

// CancelInitialize removes the initialize annotation.
func (b *Backend) CancelInitialize(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	_, err := b.setAnnotations(ctx, b.objs, b.names.config, map[string]*string{annInitialize: nil}, "", false)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// SetConfig writes the config annotation (see dcs.DCS for version).
func (b *Backend) SetConfig(ctx context.Context, value []byte, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	v := string(value)
	return b.cas(ctx, b.objs, b.names.config, map[string]*string{annConfig: &v}, version, hasAnnotation(annConfig))
}

// SetHistory writes the history annotation.
func (b *Backend) SetHistory(ctx context.Context, h []dcs.HistoryEntry) error {
	if h == nil {
		h = []dcs.HistoryEntry{}
	}
	v, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("encoding history: %w", err)
	}
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.cas(ctx, b.objs, b.names.config, map[string]*string{annHistory: strp(string(v))}, -1, nil)
}

// SetFailover writes the failover object's leader, member and scheduled_at annotations.
func (b *Backend) SetFailover(ctx context.Context, f dcs.Failover, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	ann := map[string]*string{annFailoverLeader: opt(f.Leader), annFailoverMember: opt(f.Member), annScheduledAt: nil}
	if f.ScheduledAt != nil {
		ann[annScheduledAt] = strp(dcs.ISOTime(*f.ScheduledAt))
	}
	present := func(o *object) bool { return failoverValue(o.annotations) != nil }
	return b.cas(ctx, b.objs, b.names.failover, ann, version, present)
}

// DeleteFailover deletes the failover object.
func (b *Backend) DeleteFailover(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.deleteObject(ctx, b.objs, b.names.failover)
}

// SetSync writes the sync object's leader, sync_standby and quorum annotations.
func (b *Backend) SetSync(ctx context.Context, s dcs.Sync, version int64) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	ann := map[string]*string{annSyncLeader: strp(s.Leader), annSyncStandby: nil, annQuorum: strp(strconv.Itoa(s.Quorum))}
	if len(s.SyncStandby) > 0 {
		ann[annSyncStandby] = strp(strings.Join(s.SyncStandby, ","))
	}
	present := func(o *object) bool { return syncValue(o.annotations) != nil }
	return b.cas(ctx, b.objs, b.names.sync, ann, version, present)
}

// DeleteSync deletes the sync object.
func (b *Backend) DeleteSync(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	return b.deleteObject(ctx, b.objs, b.names.sync)
}

func (b *Backend) deleteObject(ctx context.Context, k *kind, name string) error {
	err := b.try(ctx, "deleting "+k.resource+" "+b.opts.Namespace+"/"+name, func(ctx context.Context) error {
		return k.delete(ctx, name)
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
