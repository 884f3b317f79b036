package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/tusker-ha/tusker/dcs"
)

// observeLeader records the leader object as this process sees it now and returns its holder
// and whether the lock is valid: held, and seen to change less than ttl ago by this process's
// clock (renewTime is the writer's clock and only informational).
func (b *Backend) observeLeader(o *object) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o == nil {
		b.leaderObj, b.seenRV, b.leaderName = nil, "", ""
		return "", false
	}
	if b.leaderObj != nil && b.leaderObj.name == o.name && o.version() < b.leaderObj.version() {
		o = b.leaderObj // a read that started before our own last write
	}
	b.leaderObj = o
	if o.rv != b.seenRV {
		b.seenRV, b.seenAt = o.rv, time.Now()
	}
	holder := o.annotations[annLeader]
	ttl := b.ttl
	// The annotation is anyone's to write: a value past config's bound (a day) would overflow
	// the Duration into the past and make a live leader look expired.
	if s, err := strconv.Atoi(o.annotations[annTTL]); err == nil && s > 0 && s <= maxTTLAnnotation {
		ttl = time.Duration(s) * time.Second
	}
	valid := holder != "" && time.Since(b.seenAt) <= ttl
	b.leaderName = ""
	if valid {
		b.leaderName = holder
		after := time.Until(b.seenAt.Add(ttl)) + 5*time.Millisecond
		if b.expiry == nil {
			b.expiry = time.AfterFunc(after, b.signal)
		} else {
			b.expiry.Reset(after)
		}
	}
	return holder, valid
}

func (b *Backend) leaderDesc() string {
	return b.leaderKind.resource + " " + b.opts.Namespace + "/" + b.names.leader
}

// getLeader reads the leader object; nil when it does not exist.
func (b *Backend) getLeader(ctx context.Context, op string) (*object, error) {
	var o *object
	err := b.try(ctx, op+" "+b.leaderDesc(), func(ctx context.Context) error {
		var err error
		o, err = b.leaderKind.get(ctx, b.names.leader)
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return o, err
}

func nowISO() string { return dcs.ISOTime(time.Now().UTC()) }

// subsets point the leader's Endpoints at this member's pod.
func (b *Backend) subsets() []corev1.EndpointSubset {
	ports := make([]corev1.EndpointPort, 0, len(b.opts.Ports))
	for _, p := range b.opts.Ports {
		proto := corev1.Protocol(p.Protocol)
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		ports = append(ports, corev1.EndpointPort{Name: p.Name, Port: p.Port, Protocol: proto})
	}
	ref := &corev1.ObjectReference{Kind: "Pod", Namespace: b.opts.Namespace, Name: b.opts.Name}
	b.mu.Lock()
	if b.pod != nil {
		ref.UID = b.pod.UID
	}
	b.mu.Unlock()
	return []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: b.opts.PodIP, TargetRef: ref}},
		Ports:     ports,
	}}
}

// AcquireLeader takes the lock when it is free (no holder, or its holder not seen renewing for
// ttl) or already this member's, by an update on the resourceVersion it was judged at.
func (b *Backend) AcquireLeader(ctx context.Context) (bool, error) {
	ctx, cancel := b.call(ctx)
	defer cancel()
	cur, err := b.getLeader(ctx, "acquiring")
	if err != nil {
		return false, err
	}
	holder, valid := b.observeLeader(cur)
	if valid && holder != b.opts.Name {
		return false, nil
	}
	now := nowISO()
	next := &object{name: b.names.leader, annotations: map[string]string{}}
	transitions := 0
	acquired := now
	if cur != nil {
		next = cur.clone()
		transitions, _ = strconv.Atoi(cur.annotations[annTransitions])
		if holder != b.opts.Name {
			transitions++
		} else if t := cur.annotations[annAcquireTime]; t != "" {
			acquired = t
		}
	}
	a := next.annotations
	a[annLeader], a[annAcquireTime], a[annRenewTime] = b.opts.Name, acquired, now
	a[annTTL], a[annTransitions] = b.ttlSeconds(), strconv.Itoa(transitions)
	if b.opts.UseEndpoints {
		next.subsets = b.subsets()
	}
	body := b.leaderKind.encode(next, b.labels)
	var res *object
	op := "acquiring " + b.leaderDesc()
	if cur == nil {
		err = b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.create(ctx, body)
			return err
		})
		if apierrors.IsAlreadyExists(err) {
			return false, nil
		}
	} else {
		err = b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Somebody else wrote first, unless the conflict is with our own write whose answer
			// was lost (an attempt that timed out after the server applied it).
			again, gerr := b.getLeader(ctx, "acquiring")
			if gerr != nil || again == nil {
				return false, gerr
			}
			b.observeLeader(again)
			won := again.annotations[annLeader] == b.opts.Name && again.annotations[annRenewTime] == now
			return won, nil
		}
	}
	if err != nil {
		return false, err
	}
	b.observeLeader(res)
	return true, nil
}

// RenewLeader updates renewTime on the resourceVersion last seen. A conflict is re-read: while the
// lock is still this member's the update is retried on the new version (another writer touched
// the object: SetStatus racing, a user's annotation); only another holder is ErrNotLeader.
func (b *Backend) RenewLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	op := "renewing " + b.leaderDesc()
	b.mu.Lock()
	cur := b.leaderObj
	b.mu.Unlock()
	if cur == nil {
		var err error
		if cur, err = b.getLeader(ctx, "renewing"); err != nil {
			return err
		}
		if cur == nil {
			return fmt.Errorf("%s: it does not exist: %w", op, dcs.ErrNotLeader)
		}
		b.observeLeader(cur)
	}
	for {
		if h := cur.annotations[annLeader]; h != b.opts.Name {
			return fmt.Errorf("%s: held by %q: %w", op, h, dcs.ErrNotLeader)
		}
		next := cur.clone()
		next.annotations[annRenewTime] = nowISO()
		next.annotations[annTTL] = b.ttlSeconds()
		if b.opts.UseEndpoints {
			next.subsets = b.subsets()
		}
		body := b.leaderKind.encode(next, b.labels)
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		switch {
		case err == nil:
			b.observeLeader(res)
			return nil
		case apierrors.IsNotFound(err):
			b.observeLeader(nil)
			return fmt.Errorf("%s: it was deleted: %w", op, dcs.ErrNotLeader)
		case !apierrors.IsConflict(err):
			return err
		}
		b.log.Debug("leader object changed under the renewal; re-reading", "object", b.leaderDesc())
		if cur, err = b.getLeader(ctx, "renewing"); err != nil {
			return err
		}
		b.observeLeader(cur)
		if cur == nil {
			return fmt.Errorf("%s: it was deleted: %w", op, dcs.ErrNotLeader)
		}
	}
}

// ReleaseLeader removes the holder (and the Endpoints' addresses) if this member holds the lock.
func (b *Backend) ReleaseLeader(ctx context.Context) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	op := "releasing " + b.leaderDesc()
	cur, err := b.getLeader(ctx, "releasing")
	if err != nil {
		return err
	}
	for cur != nil && cur.annotations[annLeader] == b.opts.Name {
		next := cur.clone()
		delete(next.annotations, annLeader)
		next.subsets = nil
		body := b.leaderKind.encode(next, b.labels)
		var res *object
		err := b.try(ctx, op, func(ctx context.Context) error {
			var err error
			res, err = b.leaderKind.update(ctx, b.names.leader, body)
			return err
		})
		switch {
		case err == nil:
			b.observeLeader(res)
			return nil
		case apierrors.IsNotFound(err):
			b.observeLeader(nil)
			return nil
		case !apierrors.IsConflict(err):
			return err
		}
		if cur, err = b.getLeader(ctx, "releasing"); err != nil {
			return err
		}
	}
	b.observeLeader(cur)
	return nil
}

// SetStatus writes the optime, slots and retain_slots annotations of the leader object.
func (b *Backend) SetStatus(ctx context.Context, st dcs.Status) error {
	ann := map[string]*string{annOptime: strp(strconv.FormatInt(st.Optime, 10)), annSlots: nil, annRetainSlots: nil}
	if len(st.Slots) > 0 {
		v, err := json.Marshal(st.Slots)
		if err != nil {
			return fmt.Errorf("encoding slots: %w", err)
		}
		ann[annSlots] = strp(string(v))
	}
	if len(st.RetainSlots) > 0 {
		v, err := json.Marshal(st.RetainSlots)
		if err != nil {
			return fmt.Errorf("encoding retain_slots: %w", err)
		}
		ann[annRetainSlots] = strp(string(v))
	}
	return b.annotateLeader(ctx, ann, true)
}

// SetFailsafe writes the failsafe annotation of the leader object; nil removes it.
func (b *Backend) SetFailsafe(ctx context.Context, members map[string]string) error {
	if members == nil {
		return b.annotateLeader(ctx, map[string]*string{annFailsafe: nil}, false)
	}
	v, err := json.Marshal(members)
	if err != nil {
		return fmt.Errorf("encoding failsafe: %w", err)
	}
	return b.annotateLeader(ctx, map[string]*string{annFailsafe: strp(string(v))}, true)
}

func (b *Backend) annotateLeader(ctx context.Context, ann map[string]*string, create bool) error {
	ctx, cancel := b.call(ctx)
	defer cancel()
	res, err := b.setAnnotations(ctx, b.leaderKind, b.names.leader, ann, "", create)
	if apierrors.IsNotFound(err) && !create {
		return nil
	}
	if err != nil {
		return err
	}
	// Our own write: the next renewal goes on its resourceVersion instead of conflicting.
	b.observeLeader(res)
	return nil
}

// maxTTLAnnotation is config.MaxTTL: a larger ttl annotation is ignored (the configured ttl
// applies).
const maxTTLAnnotation = 86400
